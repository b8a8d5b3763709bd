"""One training run: learning, determinism, resume, checkpoints, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attnmel.config import TrainConfig, apply_overrides
from attnmel.data.synth import write_synthetic
from attnmel.errors import UserError
from attnmel.checkpoint import read_epochs, read_summary
from attnmel.record import run_identity
from attnmel.evaluation import NonFiniteError
from attnmel.train import fit

TIMING_KEYS = {"epoch_seconds", "images_per_second", "config_hash"}  # fault injection changes the hash


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth2017")
    write_synthetic("isic2017", root, seed=3, n_train=48, n_val=24, n_test=24, size=80)  # as `attnmel data synth`
    return root


@pytest.fixture()
def small_cfg(synth_root, tmp_path):
    return apply_overrides(
        TrainConfig(),
        [
            f"data.root={synth_root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.image_size=40",
            "data.crop_size=32",
            "data.passes=1",
            "data.oversample=2",
            "model.variant=attnmel",
            "model.weights=none",
            "optim.batch_size=16",
            "optim.epochs=2",
            "optim.lr=0.01",
            "runtime.device=cpu",
            "runtime.num_threads=2",
        ],
    )


def _numbers(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def test_same_config_and_seed_give_identical_metrics(small_cfg, tmp_path):
    cfg = apply_overrides(small_cfg, ["data.roi=lesion"])
    first = list(fit(cfg, tmp_path / "a"))
    second = list(fit(cfg, tmp_path / "b"))
    assert _numbers(first) == _numbers(second)
    assert first[-1]["train_dice3"] > 0 and first[-1]["train_dice4"] > 0
    other_seed = list(fit(apply_overrides(cfg, ["runtime.seed=1"]), tmp_path / "c"))
    assert _numbers(other_seed) != _numbers(first)


def test_resume_after_a_crash_equals_an_uninterrupted_run(small_cfg, tmp_path):
    cfg = apply_overrides(small_cfg, ["optim.epochs=3", "optim.lr_step=2"])
    uninterrupted = list(fit(cfg, tmp_path / "full"))

    crashing = apply_overrides(cfg, ["runtime.fail_at_epoch=3"])
    seen = []
    with pytest.raises(RuntimeError, match="injected failure at epoch 3"):
        for row in fit(crashing, tmp_path / "resumed"):
            seen.append(row)
    assert [r["epoch"] for r in seen] == [1, 2]
    resumed = list(fit(cfg, tmp_path / "resumed"))
    assert [r["epoch"] for r in resumed] == [3]
    assert _numbers(seen + resumed) == _numbers(uninterrupted)
    log = [json.loads(line) for line in (tmp_path / "resumed" / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert list(fit(cfg, tmp_path / "resumed")) == []  # a finished run does not train again


def test_results_checkpoints_and_best_epoch(small_cfg, tmp_path):
    cfg = apply_overrides(small_cfg, ["optim.epochs=3", "optim.lr_step=1", "optim.lr_gamma=0.5"])
    rows = list(fit(cfg, tmp_path / "run"))
    assert [r["lr"] for r in rows] == pytest.approx([0.01, 0.005, 0.0025])
    best = max(rows, key=lambda r: (r["val_auc"], -r["epoch"]))  # first epoch with the highest val AUC
    last = rows[-1]
    assert last["best_epoch"] == best["epoch"] and last["best_test_auc"] == best["test_auc"]
    assert last["done"] and not rows[0]["done"]
    assert sum(r["is_best"] for r in rows) >= 1 and rows[0]["is_best"]
    for row in rows:
        for key in ("val_auc", "val_ap", "test_auc", "test_ap"):
            assert 0.0 <= row[key] <= 1.0
        assert math.isfinite(row["train_loss"]) and row["train_dice3"] == 0.0  # no ROI: no Dice term
        assert row["variant"] == "attnmel" and row["paper_name"] == "AttnMel-CNN" and row["lambda1"] == 0.0
    run = tmp_path / "run"
    files = {p.name for p in run.iterdir()}
    assert {"config.yaml", "best.pt", "epochs.jsonl", "data_info.json", "predictions.csv", "final.json"} <= files
    assert "last.pt" not in files and "last.prev.pt" not in files  # resumable state dropped at the end
    state = torch.load(run / "best.pt", map_location="cpu", weights_only=True)  # plain data only
    assert state["epoch"] == best["epoch"] and state["kind"] == "model" and "optimizer" not in state
    summary = read_summary(run)
    assert summary["best_epoch"] == best["epoch"] and summary["test_ap"] == best["test_ap"]


def test_a_tiny_run_learns_the_synthetic_task(synth_root, tmp_path):
    cfg = apply_overrides(
        TrainConfig(),
        [f"data.root={synth_root}", f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=40",
         "data.crop_size=32", "data.passes=2", "model.variant=vgg16_gap", "model.weights=none",
         "optim.batch_size=16", "optim.epochs=4", "optim.lr=0.05", "runtime.device=cpu"],
    )
    rows = list(fit(cfg, tmp_path / "run"))
    assert rows[-1]["best_val_auc"] >= 0.75, [round(r["val_auc"], 3) for r in rows]


def test_non_finite_loss_names_epoch_and_step(small_cfg, tmp_path):
    cfg = apply_overrides(small_cfg, ["optim.lr=1e30", "optim.momentum=0", "optim.weight_decay=0"])
    with pytest.raises(NonFiniteError, match=r"epoch 1, step \d+"):
        list(fit(cfg, tmp_path / "run"))


def test_run_dir_of_another_config_is_refused(small_cfg, tmp_path):
    list(fit(apply_overrides(small_cfg, ["optim.epochs=1"]), tmp_path / "run"))
    with pytest.raises(UserError, match="different config"):
        list(fit(apply_overrides(small_cfg, ["optim.lr=0.5"]), tmp_path / "run"))


def test_identity_uses_effective_lambdas():
    plain = run_identity(TrainConfig())
    assert (plain["lambda1"], plain["lambda2"], plain["paper_name"]) == (0.0, 0.0, "AttnMel-CNN")
    dermo = run_identity(apply_overrides(TrainConfig(), ["data.roi=dermo"]))
    assert (dermo["lambda1"], dermo["lambda2"], dermo["paper_name"]) == (0.001, 0.01, "AttnMel-CNN-Dermo")
    with pytest.raises(UserError):
        run_identity(apply_overrides(TrainConfig(), ["data.roi=lesion", "model.variant=melcnn"]))


@pytest.mark.parametrize("background", [False, True])
def test_checkpoint_interval_repeats_at_most_the_epochs_since_the_last_one(small_cfg, tmp_path, background):
    cfg = apply_overrides(small_cfg, ["optim.epochs=3", "runtime.checkpoint_every=2",
                                      f"runtime.background_checkpoint={str(background).lower()}"])
    uninterrupted = list(fit(cfg, tmp_path / "full"))
    # epoch 2's state lands with epoch 2's result, or written in the background with epoch 3's
    landed = [False, False, True] if background else [False, True, True]
    assert [r["checkpoint"] for r in uninterrupted] == landed

    run = tmp_path / "resumed"
    seen = []
    with pytest.raises(RuntimeError, match="injected failure at epoch 3"):
        for row in fit(apply_overrides(cfg, ["runtime.fail_at_epoch=3"]), run):
            seen.append(row)
            if row["epoch"] == 1:  # no checkpoint yet: the best weights are only in memory
                assert not (run / "best.pt").exists() and not (run / "last.pt").exists()
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 2 and "best_epoch" not in state
    resumed = list(fit(cfg, run))
    assert [r["epoch"] for r in resumed] == [3]
    assert _numbers(seen + resumed) == _numbers(uninterrupted)
    assert (run / "predictions.csv").read_text() == (tmp_path / "full" / "predictions.csv").read_text()


def test_background_checkpoint_holds_the_state_of_its_epoch(small_cfg, tmp_path):
    """The state written while epoch 3 trains is epoch 2's, bit for bit as a foreground write has it."""
    cfg = apply_overrides(small_cfg, ["optim.epochs=4", "runtime.checkpoint_every=2", "runtime.fail_at_epoch=4"])
    files = {}
    for background in (False, True):
        run = tmp_path / f"background-{background}"
        with pytest.raises(RuntimeError, match="injected failure at epoch 4"):
            for _ in fit(apply_overrides(cfg, [f"runtime.background_checkpoint={str(background).lower()}"]), run):
                pass
        files[background] = {name: torch.load(run / name, map_location="cpu", weights_only=True)
                             for name in ("last.pt", "best.pt")}  # fmt: skip
    for name in ("last.pt", "best.pt"):
        fg, bg = files[False][name], files[True][name]
        assert fg["epoch"] == bg["epoch"] == (2 if name == "last.pt" else fg["epoch"])
        assert fg["model"].keys() == bg["model"].keys()
        assert all(torch.equal(fg["model"][k], bg["model"][k]) for k in fg["model"])
    fg_opt, bg_opt = files[False]["last.pt"]["optimizer"], files[True]["last.pt"]["optimizer"]
    assert all(torch.equal(fg_opt["state"][i]["momentum_buffer"], bg_opt["state"][i]["momentum_buffer"])
               for i in fg_opt["state"])  # fmt: skip
    assert [r["epoch"] for r in files[True]["last.pt"]["history"]] == [1, 2]


def test_eval_test_best_scores_test_once_and_reports_the_same_numbers(small_cfg, tmp_path):
    """``runtime.eval_test: best``: the epochs' test columns are null, the best epoch's test AUC
    and AP (results, best.pt, final.json, predictions, the summary) equal those of a run that
    scored test every epoch, and so does a crashed and resumed run."""
    cfg = apply_overrides(small_cfg, ["optim.epochs=3", "data.roi=lesion"])
    every = list(fit(cfg, tmp_path / "every"))
    best_cfg = apply_overrides(cfg, ["runtime.eval_test=best"])
    best = list(fit(best_cfg, tmp_path / "best"))
    assert all(r["test_auc"] is None and r["test_ap"] is None for r in best)
    assert all(r["best_test_auc"] is None for r in best[:-1])  # not known before the end
    same = ("epoch", "train_loss", "val_auc", "val_ap", "best_epoch", "best_val_auc", "best_test_auc", "best_test_ap")
    assert {k: best[-1][k] for k in same} == {k: every[-1][k] for k in same}
    assert [r["val_auc"] for r in best] == [r["val_auc"] for r in every]
    chosen = every[every[-1]["best_epoch"] - 1]
    assert (best[-1]["best_test_auc"], best[-1]["best_test_ap"]) == (chosen["test_auc"], chosen["test_ap"])
    assert (tmp_path / "best" / "predictions.csv").read_text() == (tmp_path / "every" / "predictions.csv").read_text()
    finals = [json.loads((tmp_path / d / "final.json").read_text()) for d in ("best", "every")]
    for final in finals:  # the recorded file sizes differ: epochs.jsonl of "best" holds nulls for test
        final.pop("files")
    assert finals[0] == finals[1]
    metrics = [torch.load(tmp_path / d / "best.pt", weights_only=True)["metrics"] for d in ("every", "best")]
    assert metrics[0] == metrics[1]
    assert read_summary(tmp_path / "best") == read_summary(tmp_path / "every")
    assert all(row["test_auc"] is None for row in read_epochs(tmp_path / "best"))

    resumed = []
    with pytest.raises(RuntimeError, match="injected failure at epoch 3"):
        for row in fit(apply_overrides(best_cfg, ["runtime.fail_at_epoch=3"]), tmp_path / "resumed"):
            resumed.append(row)
    resumed += list(fit(best_cfg, tmp_path / "resumed"))
    assert _numbers(resumed) == _numbers(best)
