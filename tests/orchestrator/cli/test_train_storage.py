"""`attnmel train` into a real small filesystem: refused when too small, one line when it fills up
or turns read-only mid-run, nothing that reads as finished, and the same command after space is
freed ends with the numbers of an uninterrupted run."""

from __future__ import annotations

import json

import pytest

from attnmel import checkpoint as ckpt
from attnmel.checkpoint_sizes import checkpoint_sizes
from attnmel.config import TrainConfig, apply_overrides
from attnmel.errors import StorageError
from attnmel.train import fit
from orchestrator.cli import main

pytestmark = pytest.mark.slow

NUMBERS = ("epoch", "lr", "train_loss", "val_auc", "val_ap", "test_auc", "test_ap")


@pytest.fixture(scope="module")
def run_args(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    assert main(["data", "synth", "--dataset", "isic2017", "--root", str(root), "--seed", "3", "--n-train", "16",
                 "--n-val", "8", "--n-test", "8", "--size", "48"]) == 0  # fmt: skip
    sets = [f"data.root={root}", f"data.cache_dir={tmp_path_factory.mktemp('cache')}", "data.image_size=40",
            "data.crop_size=32", "data.passes=1", "data.oversample=2", "model.variant=attnmel", "model.weights=none",
            "optim.batch_size=8", "optim.epochs=3", "runtime.device=cpu", "runtime.num_threads=1"]  # fmt: skip
    return [arg for s in sets for arg in ("--set", s)]


@pytest.fixture(scope="module")
def uninterrupted(run_args, tmp_path_factory):
    """The reference: the same config, run once on a roomy disk."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *run_args, "--out", str(out)]) == 0
    return out


def _config(run_args) -> TrainConfig:
    return apply_overrides(TrainConfig(), run_args[1::2])


def _same_numbers(run, reference) -> None:
    got = [{k: row[k] for k in NUMBERS} for row in ckpt.read_epochs(run)]
    assert got == [{k: row[k] for k in NUMBERS} for row in ckpt.read_epochs(reference)]
    assert (run / ckpt.PREDICTIONS).read_bytes() == (reference / ckpt.PREDICTIONS).read_bytes()
    assert ckpt.final_problem(run) is None


def test_a_full_disk_is_one_line_and_the_same_command_finishes_the_run(run_args, uninterrupted, small_fs, capsys):
    sizes = checkpoint_sizes(_config(run_args))
    # the estimate is what the run wrote: best.pt within 1 %
    assert abs((uninterrupted / ckpt.BEST).stat().st_size - sizes.model) < 0.01 * sizes.model
    fs = small_fs(sizes.model * 2.5 / 1e6)  # room for best.pt, not for last.pt beside it
    out = fs.path / "run"
    assert main(["train", *run_args, "--out", str(out)]) == 2
    refused = capsys.readouterr().err
    need = sizes.run_dir / 1e6
    print(f"run directory: estimated {need:.1f} MB, filesystem {fs.path} {sizes.model * 2.5 / 1e6:.1f} MB")  # report:
    assert refused.startswith(f"attnmel: error: --out {out}: the run needs about {need:,.1f} MB") and "--force" in refused
    assert not out.exists()  # refused before any work

    assert main(["train", *run_args, "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"attnmel: error: no space left on device writing {out}/")
    assert "run the same command to resume" in err
    assert not ckpt.is_finished(out) and not [p for p in out.iterdir() if p.name.startswith(".")]

    fs.grow(sizes.run_dir * 1.2 / 1e6)
    assert main(["train", *run_args, "--out", str(out)]) == 0
    _same_numbers(out, uninterrupted)
    final = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    print(f"run directory: estimated peak {need:.1f} MB; final size {final:.1f} MB")  # report:


def test_a_disk_turned_read_only_mid_run_resumes_from_its_last_checkpoint(run_args, uninterrupted, small_fs):
    cfg = _config(run_args)
    fs = small_fs(checkpoint_sizes(cfg).run_dir * 1.2 / 1e6)
    out = fs.path / "run"
    landed = []
    with pytest.raises(StorageError) as caught:
        for result in fit(cfg, out):
            landed.append(result["checkpoint"])
            if result["checkpoint"]:  # epoch 1's state is whole on disk: now the disk goes read-only
                fs.read_only()
    assert caught.value.reason == "read-only file system" and landed == [False, True]
    assert not ckpt.is_finished(out) and ckpt.resume_problem(out) is None
    state, _ = ckpt.load_resume_state(out)
    assert state["epoch"] == 1
    sizes = checkpoint_sizes(cfg)
    assert abs((out / ckpt.LAST).stat().st_size - sizes.resume) < 0.01 * sizes.resume

    fs.writable()
    resumed = list(fit(cfg, out))
    assert [r["epoch"] for r in resumed] == [2, 3]  # from the checkpoint, not from the start
    _same_numbers(out, uninterrupted)
    assert json.loads((out / ckpt.FINAL).read_text())["files"][ckpt.BEST] == (out / ckpt.BEST).stat().st_size
