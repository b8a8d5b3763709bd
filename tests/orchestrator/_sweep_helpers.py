"""Helpers shared by the sweep tests: run the real ``attnmel`` command, read and check a
sweep's Parquet tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_ISIC2017 = REPO / ".." / "shared" / "isic2017"

TRIAL_KEY = ["variant", "roi", "seed"]  # a trial's identity across sweeps (trial ids differ)
EPOCH_NUMBERS = ["lr", "train_loss", "val_auc", "val_ap", "test_auc", "test_ap"]

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


def fails_cleanly(capsys, tmp_path: Path, args: list[str], *needles: str) -> str:
    """``attnmel ARGS`` (in-process) fails as bad input must: exit code 2, one stderr line
    ``attnmel: error: …`` holding every needle, and no storage folder under ``tmp_path``."""
    from orchestrator.cli import main

    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("attnmel: error: "), err
    for needle in needles:
        assert needle in err[0]
    assert not (tmp_path / "results").exists()  # no storage folder, nothing half-written
    return err[0]


def read_tables(sweep_dir: Path):
    """The sweep's (trials, epochs) Parquet tables as pandas frames."""
    import pandas as pd

    return pd.read_parquet(sweep_dir / "trials.parquet"), pd.read_parquet(sweep_dir / "epochs.parquet")


def sweep_numbers(sweep_dir: Path):
    """A sweep's numbers keyed by trial identity, to compare sweeps whose trial ids differ: per
    (variant, roi, seed, epoch) the epoch numbers, and per (trial key, split, image) the
    best epoch's prediction."""
    import pandas as pd

    trials, epochs = read_tables(sweep_dir)
    ids = trials.set_index("trial_id")[TRIAL_KEY]
    epochs = epochs.join(ids, on="trial_id")[[*TRIAL_KEY, "epoch", *EPOCH_NUMBERS]]
    predictions = pd.read_parquet(sweep_dir / "predictions.parquet").join(ids, on="trial_id")
    predictions = predictions[[*TRIAL_KEY, "split", "image_id", "label", "prob", "dataset"]]
    return (
        epochs.sort_values([*TRIAL_KEY, "epoch"]).reset_index(drop=True),
        predictions.sort_values([*TRIAL_KEY, "split", "image_id"]).reset_index(drop=True),
    )


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


# --------------------------------------------------------------------------- killing drivers


def session_members(sid: int) -> dict[int, str]:
    """pid → name of the live processes in session ``sid`` (from /proc): a driver started
    with ``start_new_session`` and every process it (and Ray) started, whatever their group."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z" and int(entry.name) != os.getpid():
            members[int(entry.name)] = name  # fields: state, ppid, pgrp, session, ...
    return members


def kill_driver_group(proc: subprocess.Popen, *, timeout: float = 30) -> None:
    """SIGKILL the driver's process group at once (a crashed machine, not a polite stop), then
    every process of its session that left the group (Ray's raylet, GCS, workers, agents)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    kill_until_gone(lambda: list(session_members(proc.pid)), "the killed driver", timeout=timeout)


def kill_until_gone(pids: Callable[[], list[int]], what: str, *, timeout: float = 30) -> None:
    """SIGKILL every process ``pids()`` names, again until none is left (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (alive := pids()) and time.monotonic() < deadline:
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    assert not pids(), f"processes of {what} survive: {pids()}"


class WatchedDriver:
    """``attnmel ARGS`` in its own session, stdout and stderr read line by line into ``lines``
    (and ``log``); ``kill_when(line)`` is asked about every line and, with ``line=None``,
    every ``poll`` seconds (for moments seen on disk), and SIGKILLs the whole driver the
    moment it says yes. ``wait()`` returns the exit code, or None when it was killed."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, kill_when=None, *, poll: float = 0.02):
        self.lines: list[str] = []
        self.killed_at: str | None = None  # the line (or "<disk>") that triggered the kill
        self._kill_when, self._poll, self._lock = kill_when, poll, threading.Lock()
        self._started = time.monotonic()
        self._log = open(log, "a")
        self._log.write(f"$ attnmel {' '.join(args)}\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args], env=env, cwd=REPO, text=True, bufsize=1,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if kill_when is not None:
            threading.Thread(target=self._watch_disk, daemon=True).start()

    def _kill(self, why: str) -> None:
        with self._lock:
            if self.killed_at is None and self.proc.poll() is None:
                self.killed_at = why
                kill_driver_group(self.proc)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            self._log.write(line)
            if self._kill_when is not None and self.killed_at is None and self._kill_when(line):
                self._kill(line.strip())

    def _watch_disk(self) -> None:
        while self.proc.poll() is None and self.killed_at is None:
            if self._kill_when(None):
                self._kill("<disk>")
            time.sleep(self._poll)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None when killed; a driver still running after ``timeout`` is
        killed and fails the test."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_driver_group(self.proc)
            self._reader.join(5)
            raise AssertionError(f"driver still running after {timeout} s:\n{self.output[-3000:]}") from None
        with self._lock:  # a kill in progress (reader or disk thread) has finished reaping
            pass
        self._reader.join(10)
        if self.killed_at is None:  # ended on its own; reap what Ray may have left behind
            kill_driver_group(self.proc)
        ending = f"killed at {self.killed_at!r}" if self.killed_at is not None else f"exit {self.proc.returncode}"
        self._log.write(f"# {ending} after {time.monotonic() - self._started:.1f} s\n")
        self._log.close()
        return None if self.killed_at is not None else self.proc.returncode


# ------------------------------------------------------------------ moments in a trial's life


def epochs_done(run: Path) -> int:
    """Epochs a trial's run directory has finished (the rows of its epochs.jsonl)."""
    try:
        return sum(1 for line in (run / "epochs.jsonl").read_text().splitlines() if line.strip())
    except OSError:
        return 0


def checkpointed_with_epochs_to_go(
    sweep_dir: Path, scratch_roots: list[Path], epochs: int, to_go: int
) -> bool:
    """Whether some trial of ``epochs`` epochs has a checkpoint Tune took in (a checkpointed row
    in its result.json in the storage) and at least ``to_go`` epochs still to train: its run
    directory (under a trainable's scratch root, named ``<worker pid>-<trial id>-…``) has
    finished at most ``epochs - to_go``. A stop asked for then catches that trial mid-training
    from a checkpoint, whatever the machine's speed, unless stopping takes ``to_go`` epochs."""
    import json

    runs = {run.parent.name.split("-")[1]: run
            for root in scratch_roots for run in root.glob("*-*-*/run")}
    for path in sweep_dir.glob("*/result.json"):
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):  # being written right now
            continue
        if not any(row.get("checkpoint") and not row.get("done") for row in rows):
            continue
        run = runs.get(str(rows[-1].get("trial_id")))
        if run is not None and 1 <= epochs_done(run) <= epochs - to_go:
            return True
    return False
