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


def _terminated(sweep_dir: Path) -> set[str]:
    """Trial ids that Tune's newest saved experiment state records as TERMINATED: what a
    resume restores as finished. (Tune's own file; its trial entries are JSON strings.)"""
    states = sorted(sweep_dir.glob("experiment_state-*.json"))
    if not states:
        return set()
    try:
        data = json.loads(states[-1].read_text())
    except (OSError, json.JSONDecodeError):  # being replaced right now
        return set()
    trials = (json.loads(entry[0]) if isinstance(entry[0], str) else entry[0] for entry in data["trial_data"])
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


def _finished_trials(sweep_dir: Path) -> dict[str, bytes]:
    """Trial folder → its result.json, for trials that reported their last epoch and that the
    saved experiment state records as finished. (result.json can be ahead of that state: a
    trial whose end the driver had not saved yet is re-run from its last checkpoint.)"""
    done, terminated = {}, _terminated(sweep_dir)
    for result in sweep_dir.glob("*/result.json"):
        text = result.read_bytes()
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        if rows and rows[-1].get("done") and rows[-1].get("trial_id") in terminated:
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
    spec = make_spec(name="crash", grid=grid)  # 3 trials × 2 epochs, 2 at a time
    sweep_dir = tmp_path / "results" / "crash"
    log = open(tmp_path / "driver.log", "w")
    # Tune copies its driver-side files (result.json) into the sweep folder when it saves the
    # experiment state: every 10 s by default, or when trials checkpoint often. Every 0.5 s
    # here, so the folder shows a finished trial while the third still runs.
    env = {**cli_env, "TUNE_GLOBAL_CHECKPOINT_S": "0.5"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "sweep", "run", str(spec), "--num-cpus", "2"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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

    trials, _ = check_tables(sweep_dir, n_trials=3, epochs=2)
    assert len(list(sweep_dir.glob("*/params.json"))) == 3  # no trial was created twice
    after = _finished_trials(sweep_dir)
    assert set(after) == set(trials["trial_dir"])
    for name, text in before.items():  # finished trials were not run again: not one new result line
        assert after[name] == text, name
