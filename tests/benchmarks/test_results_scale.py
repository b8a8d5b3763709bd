"""benchmarks/results_scale (issue 35): the smoke run times every result command at two sizes
and writes a complete report; the sweep sizes and the exponent are what the docstring says."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.results_scale import SEEDS, TARGET_SECONDS, exponent, grid_side

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("asked", "trials"), [(150, 153), (1000, 1017), (5000, 5049), (1, 9)])
def test_the_grid_is_the_nearest_sweep(asked, trials):
    side = grid_side(asked)
    assert len(SEEDS) * (1 + 2 * side * side) == trials


def test_exponent_of_linear_and_quadratic_growth():
    assert exponent((100, 2.0), (1000, 20.0)) == pytest.approx(1.0)
    assert exponent((100, 1.0), (1000, 100.0)) == pytest.approx(2.0)
    assert exponent((100, 0.0), (1000, 1.0)) is None


@pytest.mark.slow
def test_smoke_run_measures_every_command_at_both_sizes(tmp_path):
    out = tmp_path / "scale.json"
    command = [sys.executable, "-m", "benchmarks.results_scale", "--smoke",
               "--json", str(out), "--keep", str(tmp_path / "s")]
    # timeout: a hang guard, not a speed bound
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert sorted(report, key=int) == ["9", "27"]
    for runs in report.values():
        assert list(runs) == list(TARGET_SECONDS)
        for run in runs.values():
            assert run["rc"] == 0 and run["seconds"] > 0 and 10 < run["peak_mb"] < 100_000, run
            assert run["first_output"] is not None, run
            assert 0 < run["first_output"] <= run["seconds"], run
    built = tmp_path / "s" / "k2" / "lambda_sensitivity" / "trials.parquet"
    assert built.is_file()  # report build ran on the kept sweep
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows[2:]] == list(TARGET_SECONDS)
    assert all(math.isfinite(float(cell)) for row in rows[2:] for cell in [row.rsplit("|", 2)[1]])
