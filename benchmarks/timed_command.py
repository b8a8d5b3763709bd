"""A command run in a child process with every output line time-stamped as it arrives, and the
events an ``attnmel sweep run`` prints (trial started, epoch, finished, the end-of-sweep line):
what the sweep benchmarks time a real sweep by."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# `SweepProgress` lines: "[<trial id>] <point>: started | epoch E/N … | finished (…) | ERROR …"
_TRIAL_LINE = re.compile(r"^\[(?P<trial>[^\]]+)\] .*?: (?P<what>started|finished|epoch (?P<epoch>\d+)/\d+|ERROR)")
_END_LINE = re.compile(r"^sweep \S+: (\d+) trials, (\d+) errored, (\d+) s wall")
_STORAGE_LINE = re.compile(r"^sweep \S+: storage ")


@dataclass
class Finished:
    """What a finished command left: exit code (None when killed at its timeout), lines, times."""

    rc: int | None
    lines: list[tuple[float, str]]
    started: float
    ended: float
    log: Path
    rss: list[tuple[float, int]] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return self.ended - self.started

    def tail(self, n: int = 12) -> list[str]:
        return [line for _, line in self.lines[-n:]]


def child_env(**extra: str) -> dict[str, str]:
    """This environment with the checkout on PYTHONPATH and unbuffered output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_command(argv: list[str], log: Path, *, timeout: float, env: dict[str, str] | None = None,
                sample_rss: bool = False) -> Finished:  # fmt: skip
    """Run ``argv`` from the checkout, stdout and stderr merged into ``log`` (time-stamped) and
    kept; killed after ``timeout`` seconds; with ``sample_rss`` the child's RSS every 0.5 s."""
    started = time.time()
    proc = subprocess.Popen(argv, cwd=REPO, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)  # fmt: skip
    lines: list[tuple[float, str]] = []
    rss: list[tuple[float, int]] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        with open(log, "w") as handle:
            for line in proc.stdout:
                lines.append((time.time(), line.rstrip("\n")))
                handle.write(f"{lines[-1][0] - started:9.2f} {line}")
                handle.flush()

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            try:
                rss.append((time.time(), 1024 * next(int(x.split()[1]) for x in status.read_text().splitlines()
                                                     if x.startswith("VmRSS"))))  # fmt: skip
            except (OSError, StopIteration, ValueError):
                pass
            done.wait(0.5)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if sample_rss:
        threading.Thread(target=sample, daemon=True).start()
    try:
        rc: int | None = proc.wait(timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    done.set()
    reader.join(timeout=10)
    return Finished(rc, lines, started, time.time(), log, rss)


def attnmel(*args: str) -> list[str]:
    """The argv of ``attnmel ARGS`` from this checkout (the console script's module)."""
    return [sys.executable, "-m", "orchestrator.cli", *args]


def sweep_events(run: Finished) -> dict[str, Any]:
    """Per trial the first time of each event ("started", "epoch 1", …, "finished"), the Tune
    fit's wall from the end-of-sweep line, and when the storage line (Ray up, inputs checked) came."""
    trials: dict[str, dict[str, float]] = {}
    sweep_wall = storage = None
    for t, line in run.lines:
        if match := _TRIAL_LINE.match(line):
            what = match["what"] if not match["epoch"] else f"epoch {match['epoch']}"
            trials.setdefault(match["trial"], {}).setdefault(what, t)
        elif match := _END_LINE.match(line):
            sweep_wall = float(match[3])
        elif storage is None and _STORAGE_LINE.match(line):
            storage = t
    return {"trials": trials, "sweep_wall": sweep_wall, "storage_line": storage}
