"""Sweeps end to end on a real embedded Ray: tables, checkpoints, query, retries of a failing trial."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from attnmel.config import config_hash
from orchestrator.sweep.spec import load_spec, spec_from_dict
from orchestrator.layout.params import params_config

from _sweep_helpers import check_tables, read_tables, run_attnmel

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_sweep_end_to_end_on_embedded_ray(tmp_path, make_spec, cli_env):
    grid = {"variants": ["vgg16_gap", "attnmel", "attnmel+lesion"], "seeds": [0], "lambda1": [0.0, 0.01]}
    spec_file = make_spec(name="e2e", grid=grid)
    proc = run_attnmel(["sweep", "run", str(spec_file), "--num-cpus", "2"], cli_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep_dir = tmp_path / "results" / "e2e"
    assert f"tables: {sweep_dir / 'trials.parquet'}" in proc.stdout
    assert "epoch 2/2 val AUC" in proc.stdout  # progress while it ran

    # λ1 is crossed into the regularised variant only: 1 + 1 + 2 trials, 2 epochs each
    trials, epochs = check_tables(sweep_dir, n_trials=4, epochs=2)
    assert sorted(zip(trials["paper_name"], trials["lambda1"])) == [
        ("AttnMel-CNN", 0.0), ("AttnMel-CNN-Lesion", 0.0), ("AttnMel-CNN-Lesion", 0.01), ("VGG-16-GAP", 0.0),
    ]  # fmt: skip

    # sweep.json holds the validated spec; each params.json rebuilds its trial's exact config
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert spec_from_dict(meta["spec"]) == load_spec(spec_file)
    for trial in trials.itertuples():
        trial_dir = sweep_dir / trial.trial_dir
        assert config_hash(params_config(json.loads((trial_dir / "params.json").read_text()))) == trial.config_hash
        # A finished trial keeps its final checkpoint only: the best epoch's weights (no
        # optimiser state, no resumable last.pt), its predictions and Table 3 scores.
        rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        kept = sorted(p.name for p in trial_dir.glob("checkpoint_*"))
        assert kept == [rows[-1]["checkpoint_dir_name"]]
        files = {p.name for p in (trial_dir / kept[0]).iterdir()}
        assert {"best.pt", "predictions.csv", "attention.json", "final.json"} <= files and "last.pt" not in files
        state = torch.load(trial_dir / kept[0] / "best.pt", map_location="cpu", weights_only=True)
        assert state["epoch"] == trial.best_epoch and "optimizer" not in state

    # one predictions row per (trial, split, image); the test AUC recomputed from them is the trial's
    predictions = pd.read_parquet(sweep_dir / "predictions.parquet")
    assert not predictions.duplicated(["trial_id", "split", "image_id"]).any()
    for trial in trials.itertuples():
        test = predictions[(predictions["trial_id"] == trial.trial_id) & (predictions["split"] == "test")]
        assert len(test) > 0 and roc_auc_score(test["label"], test["prob"]) == pytest.approx(trial.test_auc, abs=1e-12)

    # the results answer SQL through `attnmel query`
    proc = run_attnmel(
        ["query", "SELECT count(*) AS n, sum(epochs_run) AS e FROM trials", "--results", str(tmp_path / "results"),
         "--format", "json"], cli_env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": 4, "e": 8}]
    assert len(epochs) == 8
    _assert_no_scratch_left(trials)


def _assert_no_scratch_left(trials) -> None:
    """The trials' private run directories (model checkpoints!) are gone from the node."""
    from orchestrator.sweep.trainable import SCRATCH_ROOT

    left = [p.name for p in SCRATCH_ROOT.glob("*") if any(f"-{t}-" in p.name for t in trials["trial_id"])]
    assert not left


def test_failing_trial_is_retried_then_recorded_while_others_finish(tmp_path, make_spec, cache_env, capsys):
    from orchestrator.cli.reporting import sweep_reporting
    from orchestrator.sweep.tune import run_sweep

    # the same variant twice: once healthy, once raising at the start of epoch 2 on every attempt
    grid = {"variants": ["vgg16_gap"], "seeds": [0], "runtime.fail_at_epoch": [None, 2]}
    spec = load_spec(make_spec(name="fail", grid=grid, retries=1))
    assert run_sweep(spec, num_cpus=2, reporting=sweep_reporting()) == 1  # non-zero exit: a trial errored
    assert "ERROR after 2 attempts" in capsys.readouterr().out

    trials, epochs = read_tables(tmp_path / "results" / "fail")
    assert len(trials) == 2
    ok = trials[trials["status"] == "TERMINATED"]
    bad = trials[trials["status"] == "ERROR"]
    assert len(ok) == 1 and len(bad) == 1
    assert ok.iloc[0]["epochs_run"] == 2 and ok.iloc[0]["num_failures"] == 0
    failed = bad.iloc[0]
    assert "injected failure at epoch 2" in failed["error"]
    assert failed["num_failures"] == 2  # the first attempt and one retry from its checkpoint
    assert failed["epochs_run"] == 1  # epoch 1 survived in the checkpoint; the retry resumed at 2
    error_txt = (tmp_path / "results" / "fail" / failed["trial_dir"] / "error.txt").read_text()
    assert error_txt.count("Failure #") == 2
    assert sorted(epochs.groupby("trial_id").size()) == [1, 2]
    _assert_no_scratch_left(trials)
