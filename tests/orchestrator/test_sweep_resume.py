"""Kill the sweep's driver (SIGKILL) in the middle of a sweep, then `attnmel sweep resume`:
every trial ends up exactly once, and no trial that had finished runs again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _sweep_helpers import REPO, check_tables, run_attnmel

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _finished_trials(sweep_dir: Path) -> dict[str, bytes]:
    """Trial folder → its result.json, for trials that reported their last epoch."""
    done = {}
    for result in sweep_dir.glob("*/result.json"):
        text = result.read_bytes()
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        if rows and rows[-1].get("done"):
            done[result.parent.name] = text
    return done


def _session(sid: int) -> dict[int, str]:
    """pid → name of the live processes in session ``sid`` (from /proc)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session, ...
                members[int(entry.name)] = name
    return members


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the driver. Ray ties the raylet's and the trial workers' lives to it, so they
    exit on their own; then reap the few idle agent processes of its session that linger."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    agents = ("ray::DashboardA", "ray::RuntimeEnv")  # names as the kernel truncates them
    while time.monotonic() < deadline and any(not n.startswith(agents) for n in _session(proc.pid).values()):
        time.sleep(0.5)
    for pid in _session(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_resume_after_killing_the_driver(tmp_path, make_spec, cli_env):
    grid = {"variants": ["vgg16_gap", "attnmel", "attnmel+lesion"], "seeds": [0]}
    # 3 trials × 3 epochs, 2 at a time: a trial reports two checkpoints (epoch 1's state with
    # epoch 2's result, the end), so Tune snapshots its state, and syncs result.json to storage,
    # when a trial ends; with fewer it syncs on a timer and may see the whole sweep end first
    spec = make_spec(name="crash", grid=grid, train={"optim": {"epochs": 3}})
    sweep_dir = tmp_path / "results" / "crash"
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "sweep", "run", str(spec), "--num-cpus", "2"],
        env=cli_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not _finished_trials(sweep_dir):
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.5)
    finally:
        _kill_session(driver)
        log.close()

    before = _finished_trials(sweep_dir)
    assert 1 <= len(before) < 3, "the kill must land mid-sweep"
    assert not (sweep_dir / "trials.parquet").exists()

    resumed = run_attnmel(["sweep", "resume", str(sweep_dir), "--num-cpus", "2"], cli_env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming sweep crash" in resumed.stdout

    trials, _ = check_tables(sweep_dir, n_trials=3, epochs=3)
    assert len(list(sweep_dir.glob("*/params.json"))) == 3  # no trial was created twice
    after = _finished_trials(sweep_dir)
    assert set(after) == set(trials["trial_dir"])
    for name, text in before.items():  # finished trials were not run again: not one new result line
        assert after[name] == text, name
