"""Helpers shared by the sweep tests: run the real ``attnmel`` command, read and check a
sweep's Parquet tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_ISIC2017 = REPO / ".." / "shared" / "isic2017"

# A trial at this size trains an epoch in a few seconds on one CPU core.
TINY_TRAIN = {
    "data": {"image_size": 40, "crop_size": 32, "passes": 1},
    "model": {"weights": "none"},
    "optim": {"epochs": 2, "batch_size": 8},
    "runtime": {"eval_batch_size": 16},
}


def run_attnmel(args: list[str], env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``attnmel ARGS`` (the console script's module) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def read_tables(sweep_dir: Path):
    """The sweep's (trials, epochs) Parquet tables as pandas frames."""
    import pandas as pd

    return pd.read_parquet(sweep_dir / "trials.parquet"), pd.read_parquet(sweep_dir / "epochs.parquet")


def check_tables(sweep_dir: Path, *, n_trials: int, epochs: int) -> tuple[Any, Any]:
    """Every trial once and TERMINATED, one epochs row per trial and epoch, and each trial's
    best epoch/test metrics equal to the epochs table's first maximum of validation AUC."""
    trials, table = read_tables(sweep_dir)
    assert len(trials) == n_trials and trials["trial_id"].is_unique
    assert (trials["status"] == "TERMINATED").all(), trials[["trial_id", "status", "error"]]
    assert len(table) == n_trials * epochs
    assert not table.duplicated(["trial_id", "epoch"]).any()
    for trial in trials.itertuples():
        rows = table[table["trial_id"] == trial.trial_id].sort_values("epoch")
        assert list(rows["epoch"]) == list(range(1, epochs + 1))
        best = rows.iloc[int(rows["val_auc"].to_numpy().argmax())]  # argmax: first of ties
        assert trial.best_epoch == best["epoch"]
        assert trial.val_auc == pytest.approx(best["val_auc"])
        assert trial.test_auc == pytest.approx(best["test_auc"])
        assert trial.test_ap == pytest.approx(best["test_ap"])
    return trials, table
