"""Fault injection: SIGKILL the sweep driver's whole process group at distinct moments of one
small sweep, resume after each kill, and require what an uninterrupted run of the same spec
gives: every trial exactly once, TERMINATED, one row per (trial, epoch), predictions for every
trial, and identical numbers.

One sweep (2 variants × 1 seed × 3 epochs at 32 px, 2 trials at a time) is killed in turn
during preflight, right after Tune wrote ``tuner.pkl`` (before any experiment state), at an
epoch's checkpoint report, between trials and while the tables are written; each kill is
followed by ``attnmel sweep run`` (when nothing was created) or ``attnmel sweep resume``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from _sweep_helpers import EPOCH_NUMBERS, REPO, TRIAL_KEY, WatchedDriver, check_tables, sweep_numbers

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GRID = {"variants": ["vgg16_gap", "attnmel+lesion"], "seeds": [0]}
N_TRIALS, EPOCHS = 2, 3
RUN_TIMEOUT = 240  # seconds for one driver command


def _spec(make_spec, name: str) -> Path:
    return make_spec(name=name, grid=GRID, train={"optim": {"epochs": EPOCHS}}, retries=1)


def _env(cli_env: dict[str, str], cache: Path) -> dict[str, str]:
    return {**cli_env, "ATTNMEL_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


def _experiment_states(sweep_dir: Path) -> list[Path]:
    return list(sweep_dir.glob("experiment_state*"))


def _check_complete(sweep_dir: Path) -> None:
    """Exactly once, TERMINATED, no duplicated epoch row, predictions for every trial, no
    leftovers of a killed table write."""
    trials, _ = check_tables(sweep_dir, n_trials=N_TRIALS, epochs=EPOCHS)
    assert len(list(sweep_dir.glob("*/params.json"))) == N_TRIALS, "a trial was created twice"
    assert not trials.duplicated(TRIAL_KEY).any(), trials[[*TRIAL_KEY, "trial_id"]]
    predictions = pd.read_parquet(sweep_dir / "predictions.parquet")
    per_trial = predictions.groupby("trial_id").size()
    assert set(per_trial.index) == set(trials["trial_id"]), "a trial has no predictions"
    assert per_trial.nunique() == 1 and not predictions.duplicated(["trial_id", "split", "image_id"]).any()
    assert not list(sweep_dir.glob(".*.tmp-*")), "temporary files of a killed write were left behind"


# Every trial of a spec run once, uninterrupted, without Ray: ``fit`` on the trial's own
# config is all a sweep trial runs (a Ray sweep gives bit-identical numbers). In a process of
# its own, beside the drivers, it costs the CI budget neither a Ray start nor extra wall time.
_UNINTERRUPTED = """
import sys
from pathlib import Path
from attnmel.train import fit
from orchestrator.sweep.spec import load_spec
from orchestrator.layout.params import trial_config
spec = load_spec(sys.argv[1])
for i, point in enumerate(spec.points):
    for _ in fit(trial_config(spec.train, point), Path(sys.argv[2]) / str(i)):
        pass
"""


def _uninterrupted_numbers(spec_path: Path, run_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The numbers of the ``_UNINTERRUPTED`` runs, keyed like ``sweep_numbers``."""
    from attnmel.checkpoint import read_epochs, read_predictions
    from orchestrator.sweep.spec import load_spec
    from orchestrator.layout.params import trial_config

    spec = load_spec(spec_path)
    epochs, predictions = [], []
    for i, point in enumerate(spec.points):
        cfg = trial_config(spec.train, point)
        key = {"variant": cfg.model.variant, "roi": cfg.data.roi, "seed": cfg.runtime.seed}
        epochs += [{**key, **{k: row[k] for k in ("epoch", *EPOCH_NUMBERS)}} for row in read_epochs(run_root / str(i))]
        predictions += [{**key, **row} for row in read_predictions(run_root / str(i) / "predictions.csv")]
    return (
        pd.DataFrame(epochs).sort_values([*TRIAL_KEY, "epoch"]).reset_index(drop=True),
        pd.DataFrame(predictions).sort_values([*TRIAL_KEY, "split", "image_id"]).reset_index(drop=True),
    )


def test_kills_at_every_moment_then_resume_matches_an_uninterrupted_run(tmp_path, make_spec, cli_env, request):
    tally: list[tuple[str, str]] = []  # (moment, what happened)
    log = tmp_path / "drivers.log"
    spec = _spec(make_spec, "chaos")
    reference_log = tmp_path / "uninterrupted.log"
    with open(reference_log, "w") as out:
        reference = subprocess.Popen(
            [sys.executable, "-c", _UNINTERRUPTED, str(spec), str(tmp_path / "uninterrupted")],
            env=_env(cli_env, tmp_path / "reference_cache"), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    request.addfinalizer(reference.kill)  # a no-op once it has ended
    sweep_dir = tmp_path / "results" / "chaos"
    cache = tmp_path / "chaos_cache"  # its own: preflight has real work to do, and a moment to be killed in
    env = _env(cli_env, cache)
    run_args = ["sweep", "run", str(spec), "--num-cpus", "2"]
    resume_args = ["sweep", "resume", str(sweep_dir), "--num-cpus", "2"]

    problems: list[str] = []  # gathered, so that one broken moment does not hide the next ones

    def trouble(moment: str, driver: WatchedDriver) -> None:
        """A trial that errored or a traceback in a driver's output is a failure of that moment."""
        bad = [line.strip() for line in driver.lines if ": ERROR after" in line or line.startswith(("ValueError", "Traceback"))]
        reasons = [line.strip() for line in driver.lines if "Could not recover" in line or "Error:" in line]
        if bad:
            problems.append(f"after the kill {moment!r}: {bad[0]} ({reasons[0][:300] if reasons else 'see drivers.log'})")

    def kill(args: list[str], moment: str, when) -> WatchedDriver:
        driver = WatchedDriver(args, env, log, when)
        rc = driver.wait(RUN_TIMEOUT)
        if rc is not None:
            problems.append(f"{moment}: the driver ended (exit {rc}) before the kill moment")
        tally.append((moment, f"killed at {driver.killed_at!r}" if rc is None else f"not killed (exit {rc})"))
        trouble(tally[-2][0] if len(tally) > 1 else "none", driver)
        return driver

    # 1. During preflight: the first file of the preprocessing cache appears.
    kill(run_args, "preflight", lambda line: line is None and cache.is_dir() and any(cache.iterdir()))
    if not sweep_dir.exists():
        tally[-1] = (tally[-1][0], tally[-1][1] + "; nothing created")
        again = run_args  # nothing to resume: the same command again
    else:
        tally[-1] = (tally[-1][0], tally[-1][1] + " (landed after preflight: the folder exists)")
        again = resume_args

    # 2. Between tuner.pkl and the first experiment state (issue 8, defect 2).
    def tuner_written(line):
        return line is None and (sweep_dir / "tuner.pkl").exists() and not _experiment_states(sweep_dir)

    driver = kill(again, "tuner.pkl, no experiment state", tuner_written)
    if re.search(r": started$", driver.output, re.M):
        problems.append("the tuner.pkl kill landed too late: a trial had started")

    # 3. At a checkpoint report: the progress line of some trial's epoch 2 (defect 1).
    def epoch_two(line):
        return line is not None and re.search(r": epoch 2/3 ", line) is not None

    kill(resume_args, "checkpoint report (epoch 2/3)", epoch_two)

    # 4. Between trials: the moment one finishes.
    kill(resume_args, "between trials (finished)", lambda line: line is not None and ": finished (" in line)

    # 5. While the tables are written: right after the summary line that precedes them.
    def summary(line):
        return line is not None and re.search(r"\d+ trials, \d+ errored", line) is not None

    kill(resume_args, "writing the tables", summary)

    # Finally: resume to completion.
    final = WatchedDriver(resume_args, env, log)
    rc = final.wait(RUN_TIMEOUT)
    trouble(tally[-1][0], final)
    if rc != 0:
        problems.append(f"the last resume exited {rc}")

    assert reference.wait(timeout=RUN_TIMEOUT) == 0, reference_log.read_text()[-3000:]
    ref_epochs, ref_predictions = _uninterrupted_numbers(spec, tmp_path / "uninterrupted")

    def same_numbers() -> None:
        epochs, predictions = sweep_numbers(sweep_dir)
        pd.testing.assert_frame_equal(epochs, ref_epochs, check_exact=True, check_dtype=False)
        pd.testing.assert_frame_equal(predictions, ref_predictions, check_exact=True, check_dtype=False)

    for what, check in (("exactly once", lambda: _check_complete(sweep_dir)), ("same numbers", same_numbers)):
        try:
            check()
        except (AssertionError, OSError) as exc:
            problems.append(f"{what}: {type(exc).__name__}: {str(exc)[:1500]}")
    survived = [m for m, _ in tally if not any(m in p for p in problems)]
    print("\n".join(f"kill {i + 1}: {moment}: {what}" for i, (moment, what) in enumerate(tally)))  # report:
    print(f"kills survived / tried: {len(survived)}/{len(tally)}")  # report:
    assert not problems, "\n".join(problems) + f"\n(driver output: {log})"
