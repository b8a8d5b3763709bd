"""How the result commands scale with the number of trials (issue 35).

Writes a finished λ sweep of fake trial folders with the test fixtures' writer
(``tests/orchestrator/_results_fixtures.py``: 50 epochs each, per-image predictions on ISIC
2017's 150 validation and 600 test images, Table 3 scores), shaped like
``experiments/lambda_sensitivity.yaml`` with a k × k λ grid: 3 seeds × (AttnMel-CNN + 2 ROIs ×
k²) trials, k chosen so that the count is nearest the one asked (150 → 153, 1,000 → 1,017,
5,000 → 5,049). Then runs, each as its own ``attnmel`` process, as a user would:
``attnmel --help``, ``report build``, ``report show`` twice (first, then again on the same
tables), ``report html`` and one ``query`` (GROUP BY over the trials), and prints each
command's wall time and peak memory (the child's maximum resident set, ``os.wait4``) beside
the issue's target, as measured / target (≤ 1 meets it), and the exponent of each between
consecutive sizes (log(t₂/t₁) / log(n₂/n₁): 1 is linear).

    .venv/bin/python -m benchmarks.results_scale [--trials 150 1000] [--json out.json]
    .venv/bin/python -m benchmarks.results_scale --trials 150 1000 5000   # 5,000: off by default
    .venv/bin/python -m benchmarks.results_scale --smoke                  # tiny, for the test

The 5,000-trial size is off by default: writing its folders alone takes minutes on 2 CPUs.
``--smoke`` uses 9 and 27 trials with 15/45 images, 3 epochs and the fewest resamples
(its numbers say nothing about speed; it checks the benchmark runs end to end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "orchestrator"))  # the fake trial folders' writer

from _results_fixtures import epoch_metrics, identity, write_final, write_trial  # noqa: E402
from orchestrator.sweep.spec import load_spec, spec_from_dict, spec_to_dict  # noqa: E402

# Issue 35's targets, seconds and MB (the slower machines, alone, 1,000 trials). --help: the
# start-up item's 0.5 s to a command's first output; the page at 153 trials: 5 s.
TARGET_SECONDS = {
    "help": 0.5, "build": 10.0, "show": 5.0, "show again": 1.0, "html": 15.0, "query": 1.0,
}
PAGE_153_SECONDS = 5.0
TARGET_PEAK_MB = 1024.0
SEEDS = (0, 1, 2)
SMOKE_RESAMPLES = 1000  # the fewest the report commands accept
QUERY = ("SELECT paper_name, lambda1, lambda2, count(*) AS n, avg(test_auc) AS auc "
         "FROM trials GROUP BY ALL ORDER BY ALL")


@dataclass(frozen=True)
class Shape:
    """The fake trials' size: images per split, melanomas among them, epochs per trial."""

    n_val: int = 150
    n_test: int = 600
    val_mel: int = 30
    test_mel: int = 117
    epochs: int = 50


FULL, SMOKE = Shape(), Shape(n_val=15, n_test=45, val_mel=5, test_mel=15, epochs=3)


@dataclass
class Run:
    """One command's run: exit code, wall seconds, seconds to its first line of output, peak MB."""

    command: str
    rc: int
    seconds: float
    first_output: float | None
    peak_mb: float


def grid_side(trials: int) -> int:
    """k of the k × k λ grid whose sweep (3 seeds × (1 + 2·k²)) is nearest ``trials``."""
    return max(1, round(math.sqrt(max(trials / len(SEEDS) - 1, 2) / 2)))


def lambda_sweep(root: Path, side: int, shape: Shape) -> Path:
    """The trial folders of lambda_sensitivity.yaml with a ``side`` × ``side`` λ grid, finished,
    with predictions; its ``sweep.json`` holds that spec."""
    raw = spec_to_dict(load_spec(REPO / "experiments" / "lambda_sensitivity.yaml"))
    values = [0.0] + [float(v) for v in np.logspace(-4, -1, side - 1)] if side > 1 else [1e-3]
    variants = ["attnmel", "attnmel+lesion", "attnmel+dermo"]
    raw["grid"].update(variants=variants, seeds=list(SEEDS), lambda1=values, lambda2=values)
    spec = spec_from_dict(raw)
    sweep_dir = root / spec.name
    sweep_dir.mkdir(parents=True)
    meta = {
        "name": spec.name,
        "spec": spec_to_dict(spec),
        "code_version": "bench",
        "created": "2026-01-01T00:00:00+00:00",
    }
    (sweep_dir / "sweep.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    labels = {
        "val": np.arange(shape.n_val) < shape.val_mel,
        "test": np.arange(shape.n_test) < shape.test_mel,
    }
    for index, point in enumerate(spec.points):
        variant, _, roi = point["variant"].partition("+")
        seed = point["runtime.seed"]
        ident = identity(variant, roi or "none", seed, point.get("loss.lambda1", 0.0),
                         point.get("loss.lambda2", 0.0))
        history = epoch_metrics(rng, shape.epochs)
        params = {"variant": point["variant"], "seed": seed,
                  "l1": ident["lambda1"], "l2": ident["lambda2"]}
        trial_id = f"ab12c_{index:05d}"
        trial_dir = write_trial(sweep_dir, trial_id, index, ident, history, params=params)
        rows = []
        for split, y in labels.items():
            probs = 1 / (1 + np.exp(-(1.5 * (y - 0.5) + rng.normal(size=y.size))))
            rows += [
                (split, f"ISIC_{split}_{i:07d}", int(t), round(float(p), 6))
                for i, (t, p) in enumerate(zip(y, probs))
            ]
        attention = [
            {"map": m, "split": "val", "n_images": shape.n_val,
             "jaccard_mean": float(rng.uniform(0.2, 0.6)), "jaccard_std": 0.1}
            for m in ("pool3", "pool4")
        ]
        write_final(trial_dir, rows, attention, epochs=history)
    return sweep_dir


def run_command(name: str, args: list[str], env: dict[str, str]) -> Run:
    """``attnmel ARGS`` in a child process: its wall time, first output line and peak resident
    memory (``ru_maxrss`` of that child alone, from ``os.wait4``)."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "orchestrator.cli", *args]
    pipe = subprocess.PIPE
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=pipe, stderr=pipe)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(child.stderr.read()), daemon=True)
    reader.start()
    first = child.stdout.readline()
    first_output = time.perf_counter() - started if first else None
    child.stdout.read()
    reader.join()
    _, status, usage = os.wait4(child.pid, 0)  # reaped here, so Popen never waits for it
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.stderr.write(b"".join(err).decode(errors="replace")[-2000:])
    return Run(name, child.returncode, seconds, first_output, usage.ru_maxrss / 1024)


def measure(sweep_dir: Path, resamples: int | None, env: dict[str, str]) -> dict[str, Run]:
    """Every command once (``report show`` twice) on the sweep ``sweep_dir``, in order."""
    extra = ["--resamples", str(resamples)] if resamples else []
    path = str(sweep_dir)
    commands = {
        "help": ["--help"],
        "build": ["report", "build", path],
        "show": ["report", "show", path, *extra],
        "show again": ["report", "show", path, *extra],
        "html": ["report", "html", path, *extra],
        "query": ["query", "--results", str(sweep_dir.parent), QUERY],
    }
    return {name: run_command(name, args, env) for name, args in commands.items()}


def exponent(a: tuple[int, float], b: tuple[int, float]) -> float | None:
    """log(t₂/t₁) / log(n₂/n₁) of two (trials, value) pairs; None when undefined."""
    (n1, t1), (n2, t2) = a, b
    if min(t1, t2) <= 0 or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def table(results: dict[int, dict[str, Run]]) -> str:
    """The Markdown table: per size and command, seconds and peak MB with measured / target."""
    sizes = sorted(results)
    head = "| command | " + " | ".join(f"{n:,} trials: s (÷ target) | MB" for n in sizes)
    head += "".join(f" | exponent {a:,}→{b:,}" for a, b in zip(sizes, sizes[1:])) + " |"
    lines = [head, "|" + " --- |" * (1 + 2 * len(sizes) + max(len(sizes) - 1, 0))]
    for name in TARGET_SECONDS:
        cells = []
        for n in sizes:
            run = results[n][name]
            target = PAGE_153_SECONDS if name == "html" and n < 500 else TARGET_SECONDS[name]
            mark = "" if run.rc == 0 else f" (exit {run.rc})"
            cells += [f"{run.seconds:.2f} ({run.seconds / target:.2f}){mark}", f"{run.peak_mb:.0f}"]
        for a, b in zip(sizes, sizes[1:]):
            e = exponent((a, results[a][name].seconds), (b, results[b][name].seconds))
            cells.append("–" if e is None else f"{e:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    targets = ", ".join(f"{k} {v:g} s" for k, v in TARGET_SECONDS.items())
    lines.append("")
    lines.append(
        f"Targets (issue 35, 1,000 trials): {targets}; the page at ~150 trials "
        f"{PAGE_153_SECONDS:g} s (used for html below 500 trials); every command "
        f"≤ {TARGET_PEAK_MB:.0f} MB peak. (÷ target) is measured / target: ≤ 1 meets it."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the sweeps, time every command on each, print the table; 1 if a command failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, nargs="+", default=[150, 1000],
        help="sweep sizes (default: 150 1000; 5000 is optional and slow to write)",
    )
    parser.add_argument("--smoke", action="store_true", help="9 and 27 tiny trials: that it runs")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--keep", type=Path, help="write the sweeps under this folder, keep them")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.trials):
        parser.error("--trials: sizes must be positive")
    shape = SMOKE if args.smoke else FULL
    sides = [1, 2] if args.smoke else sorted({grid_side(n) for n in args.trials})
    resamples = SMOKE_RESAMPLES if args.smoke else None
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "ATTNMEL_RESULTS")}
    base = args.keep or Path(tempfile.mkdtemp(prefix="results_scale_"))
    results: dict[int, dict[str, Run]] = {}
    for side in sides:
        root = base / f"k{side}"
        started = time.perf_counter()
        sweep_dir = lambda_sweep(root, side, shape)
        trials = len(SEEDS) * (1 + 2 * side * side)
        written = time.perf_counter() - started
        print(f"{trials} trials written in {written:.0f} s; measuring", flush=True)
        results[trials] = measure(sweep_dir, resamples, env)
        for run in results[trials].values():
            line = f"{run.seconds:.2f} s, {run.peak_mb:.0f} MB, exit {run.rc}"
            print(f"  {run.command}: {line}", flush=True)
    if args.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    print(table(results))
    if args.json:
        plain = {str(n): {k: asdict(r) for k, r in runs.items()} for n, runs in results.items()}
        args.json.write_text(json.dumps(plain, indent=1))
    return 0 if all(r.rc == 0 for runs in results.values() for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
