"""The sweep page's size and write time: the demo's, and a 153-trial λ sweep's.

Targets (issue 23): the demo's page under 3 MB; the page of ``experiments/lambda_sensitivity.yaml``
(2 ROIs × 5 × 5 λ × 3 seeds + 3 = 153 trials) under 10 MB, written in under 10 s on 2 CPUs.

The demo part reads a real demo sweep folder (``make demo`` writes ``results/demo``) and writes
its last page, Fig. 3 included (it loads each model's best checkpoint). The λ part writes 153
trial folders as Tune and ``fit`` leave them (``tests/orchestrator/_results_fixtures.py``): 50
epochs each, per-image predictions on ISIC 2017's 150 validation and 600 test images, Table 3
scores, and the lambda_sensitivity spec in ``sweep.json``; there are no checkpoints, so its
Fig. 3 says why it is missing. Each is timed three ways: as ``attnmel report html`` (tables
built from the trial folders, then the page), as the end of ``sweep run`` (tables given), and
as the refresh after a finished trial (a live page: no Fig. 3).

    .venv/bin/python benchmarks/page_size.py [--demo results/demo] [--trials-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "orchestrator"))  # the fake trial folders' writer

from _results_fixtures import epoch_metrics, identity, write_final, write_trial  # noqa: E402
from orchestrator.cli.reporting import read_spec  # noqa: E402
from orchestrator.results.build import load_tables  # noqa: E402
from orchestrator.results.comparisons import setting_intervals  # noqa: E402
from orchestrator.results.stats import DEFAULT_RESAMPLES  # noqa: E402
from orchestrator.results.html import write_page  # noqa: E402
from orchestrator.sweep.spec import load_spec, spec_to_dict  # noqa: E402

DEMO_LIMIT_MB, LAMBDA_LIMIT_MB, LAMBDA_LIMIT_S = 3.0, 10.0, 10.0
N_VAL, N_TEST, VAL_MEL, TEST_MEL = 150, 600, 30, 117  # ISIC 2017's validation and test splits


def lambda_sweep(root: Path, epochs: int = 50) -> Path:
    """The 153 trial folders of experiments/lambda_sensitivity.yaml, finished, with predictions."""
    spec = load_spec(REPO / "experiments" / "lambda_sensitivity.yaml")
    sweep_dir = root / spec.name
    sweep_dir.mkdir(parents=True)
    meta = {"name": spec.name, "spec": spec_to_dict(spec), "code_version": "bench",
            "created": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    (sweep_dir / "sweep.json").write_text(json.dumps(meta))
    rng = np.random.default_rng(0)
    labels = {"val": np.arange(N_VAL) < VAL_MEL, "test": np.arange(N_TEST) < TEST_MEL}
    for index, point in enumerate(spec.points):
        variant, _, roi = point["variant"].partition("+")
        ident = identity(variant, roi or "none", point["runtime.seed"], point.get("loss.lambda1", 0.0),
                         point.get("loss.lambda2", 0.0))  # fmt: skip
        trial_id = f"ab12c_{index:05d}"
        history = epoch_metrics(rng, epochs)
        trial_dir = write_trial(sweep_dir, trial_id, index, ident, history,
                                params={"variant": point["variant"], "seed": point["runtime.seed"]})  # fmt: skip
        rows = []
        for split, y in labels.items():
            probs = 1 / (1 + np.exp(-(1.5 * (y - 0.5) + rng.normal(size=y.size))))
            rows += [(split, f"ISIC_{split}_{i:07d}", int(t), round(float(p), 6)) for i, (t, p) in enumerate(zip(y, probs))]
        attention = [{"map": m, "split": "val", "n_images": N_VAL, "jaccard_mean": float(rng.uniform(0.2, 0.6)),
                      "jaccard_std": 0.1} for m in ("pool3", "pool4")]  # fmt: skip
        write_final(trial_dir, rows, attention, epochs=history)
    return sweep_dir


def measure(label: str, sweep_dir: Path, limit_mb: float, limit_s: float | None) -> None:
    out = Path(tempfile.mkdtemp()) / "page.html"
    clocks = (time.perf_counter, time.process_time)  # wall; this process's CPU, which load barely moves
    start = [clock() for clock in clocks]
    tables = load_tables(sweep_dir)
    built = [clock() - s for clock, s in zip(clocks, start)]
    write_page(sweep_dir, out, read_spec=read_spec, tables=tables)
    full = [clock() - s for clock, s in zip(clocks, start)]
    size = out.stat().st_size / 1e6
    start = [clock() for clock in clocks]
    write_page(sweep_dir, out.with_name("live.html"), read_spec=read_spec, live=True, tables=tables)
    live = [clock() - s for clock, s in zip(clocks, start)]
    start = [clock() for clock in clocks]
    if not tables.predictions.empty:  # the page's share that is the statistics' (the same call it makes)
        setting_intervals(tables.trials, tables.predictions, n_resamples=DEFAULT_RESAMPLES, per_trial=False)
    intervals = [clock() - s for clock, s in zip(clocks, start)]
    trials = len(tables.trials)
    print(f"{label}: {trials} trials, page {size:.2f} MB ({size / limit_mb:.0%} of {limit_mb:g} MB), "
          f"live page {out.with_name('live.html').stat().st_size / 1e6:.2f} MB; wall (CPU) seconds, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:", flush=True)  # fmt: skip
    for what, (wall, cpu) in (("report html: tables", built), ("report html: tables + page", full),
                              ("end of sweep run: page", (full[0] - built[0], full[1] - built[1])),
                              ("  of which the setting intervals (setting_intervals)", intervals),
                              ("refresh after a trial (live: no intervals, no Fig. 3)", live)):  # fmt: skip
        target = f"  = {wall / limit_s:.0%} ({cpu / limit_s:.0%}) of {limit_s:g} s" if limit_s and "tables +" in what else ""
        print(f"  {what:<58} {wall:6.1f} ({cpu:5.1f}){target}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default=str(REPO / "results" / "demo"), help="a finished demo sweep folder")
    parser.add_argument("--trials-only", action="store_true", help="skip the demo part")
    args = parser.parse_args()
    if not args.trials_only:
        demo = Path(args.demo)
        if (demo / "sweep.json").exists():
            measure("demo", demo, DEMO_LIMIT_MB, None)
        else:
            print(f"demo: no sweep at {demo} (run `make demo`, or --demo PATH)")
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        sweep_dir = lambda_sweep(Path(root))
        print(f"λ sweep: 153 fake trial folders written in {time.perf_counter() - start:.1f} s", flush=True)
        measure("λ sweep", sweep_dir, LAMBDA_LIMIT_MB, LAMBDA_LIMIT_S)


if __name__ == "__main__":
    main()
