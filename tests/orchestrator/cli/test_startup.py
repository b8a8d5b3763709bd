"""The result commands start without torch or Ray (issue 35): `attnmel --help`, `report build`,
`report show`, `report compare`, `report html` of copied tables, `query` and the plots that
need no model run in a fresh interpreter in which neither was ever imported. The commands that
need a model (`train`, `predict`, `plot attention`, `sweep`) may import them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _results_fixtures import scored_sweep

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "ray")

# Runs each command line through orchestrator.cli.main in this one fresh process, and records
# after each its exit code and which of HEAVY had been imported by then.
_RUNNER = """
import json, sys
from orchestrator.cli import main
heavy, report = {heavy!r}, []
report.append({{"argv": ["import orchestrator.cli"], "rc": 0,
               "heavy": [m for m in heavy if m in sys.modules]}})
for argv in json.loads(sys.argv[1]):
    try:
        rc = main(argv)
    except SystemExit as exc:  # --help
        rc = exc.code
    report.append({{"argv": argv, "rc": rc, "heavy": [m for m in heavy if m in sys.modules]}})
with open(sys.argv[2], "w") as out:
    json.dump(report, out)
"""


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    sweep, _ = scored_sweep(tmp_path_factory.mktemp("startup"))
    return sweep


def _run(commands: list[list[str]], tmp_path: Path) -> list[dict]:
    out = tmp_path / "report.json"
    runner = [sys.executable, "-c", _RUNNER.format(heavy=HEAVY), json.dumps(commands), str(out)]
    # timeout: a hang guard, not a speed bound
    done = subprocess.run(runner, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_result_commands_import_neither_torch_nor_ray(sweep_dir, tmp_path):
    d = str(sweep_dir)
    commands = [
        ["--help"],
        ["report", "build", d],
        ["report", "show", d, "--no-ci"],
        ["query", "--results", str(sweep_dir.parent),
         "SELECT paper_name, avg(test_auc) FROM trials GROUP BY 1"],
        ["report", "show", d, "--resamples", "1000"],
        ["report", "compare", d, "attnmel", "vgg16_gap", "--resamples", "1000"],
        ["report", "power", d, "attnmel", "vgg16_gap", "--resamples", "1000"],
        ["report", "power", "paper", "AttnMel-CNN-Lesion", "AttnMel-CNN",
         "--seed-sd", "0.01", "--correlation", "0.8"],
        ["plot", "sensitivity", d, "--out", str(tmp_path / "sensitivity.png"),
         "--resamples", "1000"],
        ["plot", "curves", d, "--out", str(tmp_path / "curves.png")],
        ["plot", "calibration", d, "--out", str(tmp_path / "calibration.png")],
        ["report", "html", d],  # no checkpoints: Fig. 3 is left out with a note, no model loaded
    ]
    report = _run(commands, tmp_path)
    assert [row["argv"] for row in report[1:]] == commands  # every command ran
    assert [(row["argv"], row["rc"]) for row in report] == [(row["argv"], 0) for row in report]
    assert [(row["argv"], row["heavy"]) for row in report] == [(row["argv"], []) for row in report]
    assert (sweep_dir / "trials.parquet").is_file()
    assert (tmp_path / "calibration.png").stat().st_size > 0


def test_the_check_sees_torch_when_a_command_needs_it(sweep_dir, tmp_path):
    """The same runner reports torch once a command that loads a model has run (here `predict`
    of a missing file, refused after its imports), so the test above can fail."""
    out = str(tmp_path / "out")
    predict = ["predict", str(tmp_path / "missing.pt"), str(tmp_path), "--out", out]
    report = _run([predict], tmp_path)
    assert report[0]["heavy"] == [] and "torch" in report[1]["heavy"]
