"""Bad sweeps fail before any work: one clear line, exit code 2, no storage folder."""

from __future__ import annotations

import shutil
import socket

import pytest

from orchestrator.cli import main

from _sweep_helpers import fails_cleanly, run_attnmel


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    "sections, needles",
    [
        ({"grid": {"variants": ["vgg16_gap", "resnet18"]}}, ("unknown variant 'resnet18'", "grid.variants")),
        ({"trainn": {}}, ("unknown spec key 'trainn'",)),
        ({"train": {"optim": {"momentun": 0.9}}}, ("optim.momentun",)),
        ({"grid": {"variants": ["attnmel+lesion"], "lambda2": [0.01, -0.5]}}, ("grid.lambda2", ">= 0")),
    ],
)
def test_bad_spec(capsys, tmp_path, make_spec, sections, needles):
    fails_cleanly(capsys, tmp_path, ["sweep", "run", str(make_spec(**sections))], *needles)


def test_missing_dataset_root(capsys, tmp_path, make_spec):
    spec = make_spec(dataset={"name": "isic2017", "root": str(tmp_path / "nowhere")})
    fails_cleanly(capsys, tmp_path, ["sweep", "run", str(spec)], "nowhere", "dataset.root")


def test_regularised_variant_without_roi_maps(capsys, tmp_path, make_spec, sweep_data):
    root = shutil.copytree(sweep_data, tmp_path / "no_part2")
    shutil.rmtree(root / "ISIC-2017_Training_Part2_GroundTruth")  # the dermo features of the training split
    spec = make_spec(dataset={"name": "isic2017", "root": str(root)}, grid={"variants": ["attnmel", "attnmel+dermo"]})
    fails_cleanly(capsys, tmp_path, ["sweep", "run", str(spec)], "ROI 'dermo'", "features.json")


def test_unreachable_address(capsys, tmp_path, make_spec):
    port = _closed_port()
    line = fails_cleanly(capsys, tmp_path, ["sweep", "run", str(make_spec()), "--address", f"127.0.0.1:{port}"])
    assert f"127.0.0.1:{port}" in line and "cannot reach" in line


def test_existing_sweep_folder_is_not_reused(capsys, tmp_path, make_spec):
    (tmp_path / "results" / "t").mkdir(parents=True)
    rc = main(["sweep", "run", str(make_spec())])
    err = capsys.readouterr().err
    assert rc == 2 and "sweep resume" in err and "--unique" in err


def test_submit_refuses_paths_the_cluster_cannot_resolve(capsys, tmp_path, make_spec):
    spec = make_spec(storage="results")
    rc = main(["sweep", "submit", str(spec), "--address", "http://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert rc == 2 and "storage" in err and "relative path" in err


def test_dry_run_prints_the_trials_and_starts_nothing(capsys, tmp_path, make_spec):
    spec = make_spec(grid={"variants": ["vgg16_gap", "attnmel+lesion"], "seeds": [0, 1], "lambda1": [0.0, 0.1]})
    assert main(["sweep", "run", str(spec), "--dry-run"]) == 0
    assert "# 6 trials" in capsys.readouterr().out  # 2 seeds × (1 + 2 λ1)
    assert not (tmp_path / "results").exists()


def test_exit_code_of_the_real_command(tmp_path, make_spec, cli_env):
    proc = run_attnmel(["sweep", "run", str(make_spec(grid={"variants": ["vgg17"]}))], cli_env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("attnmel: error: spec key 'grid.variants'")
