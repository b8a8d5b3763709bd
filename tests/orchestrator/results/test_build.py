"""orchestrator.results.build: trial directories → trials/epochs tables → paper-style summary."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from attnmel.errors import UserError
from orchestrator.results.paper import summarize
from orchestrator.results.text import format_summary
from orchestrator.results.build import build_tables, find_sweep_dirs, load_tables, write_tables
from orchestrator.results.tables import SCHEMAS, read

TRIAL_COLUMNS, EPOCH_COLUMNS = SCHEMAS["trials"].names, SCHEMAS["epochs"].names

from _results_fixtures import (
        CRASHED_PARAMS, epoch_metrics, identity, lambda_sweep, paper_sweep, replayed, write_experiment_state,
        write_sweep_json, write_trial,
    )  # fmt: skip

REPO = Path(__file__).resolve().parents[3]
PLAIN_DTYPES = {"str", "int64", "Int64", "float64", "bool", "boolean"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return paper_sweep(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def tables(sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    return build_tables(sweep)[:2]


def _trial(trials: pd.DataFrame, **match) -> pd.Series:
    rows = trials
    for key, value in match.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, match
    return rows.iloc[0]


def test_one_row_per_trial_and_per_trial_epoch(sweep, tables):
    trials, epochs = tables
    assert list(trials.columns) == list(TRIAL_COLUMNS) and list(epochs.columns) == list(EPOCH_COLUMNS)
    assert len(trials) == len(list(sweep.glob("*/params.json"))) == 7 * 3 + 2
    assert trials["trial_id"].is_unique and set(trials["sweep"]) == {"paper17"}
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    # Epoch rows per trial = distinct epochs reported, which is what epochs_run says.
    per_trial = epochs.groupby("trial_id").size()
    assert per_trial.reindex(trials["trial_id"], fill_value=0).tolist() == trials["epochs_run"].tolist()
    assert epochs["epoch"].groupby(epochs["trial_id"]).apply(lambda e: list(e) == list(range(1, len(e) + 1))).all()


def test_best_epoch_is_first_max_of_validation_auc(tables):
    trials, epochs = tables
    have = trials[trials["epochs_run"] > 0]
    # idxmax returns the first maximum: an independent recomputation from the epochs table.
    first_max = epochs.loc[epochs.groupby("trial_id")["val_auc"].idxmax()].set_index("trial_id")
    for row in have.itertuples():
        best = first_max.loc[row.trial_id]
        assert row.best_epoch == best["epoch"]
        for metric in ("val_auc", "val_ap", "test_auc", "test_ap"):
            assert getattr(row, metric) == best[metric]


def test_best_epoch_ignores_test_and_takes_the_earliest_tie(tmp_path):
    rows = epoch_metrics(np.random.default_rng(0), 4)
    for row, val, test in zip(rows, (0.70, 0.90, 0.80, 0.90), (0.99, 0.60, 0.98, 0.97)):
        row["val_auc"], row["test_auc"] = val, test
    write_trial(tmp_path, "aaaaa_00000", 0, identity(), rows)
    trials, _, *_ = build_tables(tmp_path)
    row = trials.iloc[0]
    assert row["best_epoch"] == 2 and row["val_auc"] == 0.90 and row["test_auc"] == 0.60
    assert row["status"] == "TERMINATED"


def test_test_scored_only_at_the_end_comes_from_the_finished_trials_last_result(tmp_path):
    """``runtime.eval_test: best``: the epoch rows carry no test metrics; the trial's test AUC/AP
    are those its last result reports for the best epoch, and the epochs table keeps nulls."""
    rows = epoch_metrics(np.random.default_rng(1), 3)
    for row, val in zip(rows, (0.70, 0.90, 0.80)):
        row.update(val_auc=val, test_auc=None, test_ap=None)
    trial_dir = write_trial(tmp_path, "bbbbb_00000", 0, identity(), rows)
    results = trial_dir / "result.json"
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert lines[-1]["best_epoch"] == 2 and lines[-1]["best_test_auc"] is None
    lines[-1].update(best_test_auc=0.61, best_test_ap=0.33)  # what fit reports once it scored test
    results.write_text("".join(json.dumps(line) + "\n" for line in lines))
    trials, epochs, *_ = build_tables(tmp_path)
    row = trials.iloc[0]
    assert (row["best_epoch"], row["val_auc"], row["test_auc"], row["test_ap"]) == (2, 0.90, 0.61, 0.33)
    assert epochs["test_auc"].isna().all() and epochs["test_ap"].isna().all()


def test_restored_trial_keeps_the_last_row_of_each_repeated_epoch(sweep, tables):
    trials, epochs = tables
    row = _trial(trials, paper_name="Mel-CNN", seed=1)
    lines = [json.loads(line) for line in (sweep / row["trial_dir"] / "result.json").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 2, 3, 4]  # the fixture really repeats
    kept = epochs[epochs["trial_id"] == row["trial_id"]].set_index("epoch")
    assert list(kept.index) == [1, 2, 3, 4]
    for epoch in (2, 3):  # the second report of a repeated epoch wins
        assert kept.loc[epoch, "val_auc"] == lines[epoch + 1]["val_auc"] == replayed(lines[epoch - 1])["val_auc"]
    assert row["status"] == "TERMINATED" and row["restarts"] == 1 and row["num_failures"] == 1
    assert row["wall_seconds"] == pytest.approx(lines[-1]["time_total_s"])


def test_errored_and_crashed_trials(tables):
    trials, _ = tables
    errored = _trial(trials, status="ERROR")
    assert errored["error"] == "RuntimeError: injected failure at epoch 3"  # last line, ANSI stripped
    assert errored["num_failures"] == 2 and errored["epochs_run"] == 2 and errored["paper_name"] == "VGG-16"
    crashed = _trial(trials, status="INCOMPLETE")
    # No result row: the id comes from the directory name; no best epoch, no wall time.
    assert crashed["trial_id"] == "ab12c_00022" and crashed["epochs_run"] == 0
    assert pd.isna(crashed["best_epoch"]) and math.isnan(crashed["wall_seconds"]) and pd.isna(crashed["error"])
    assert set(trials["status"]) == {"TERMINATED", "ERROR", "INCOMPLETE"}


def test_crashed_trial_identity_comes_from_its_params(tables):
    from attnmel.record import run_identity
    from orchestrator.layout.params import params_config

    crashed = _trial(tables[0], status="INCOMPLETE")
    expected = run_identity(params_config(CRASHED_PARAMS))
    assert expected["paper_name"] == "AttnMel-CNN-Lesion" and expected["seed"] == 9
    expected["code_version"] = "0.1.0+test"  # the sweep's (sweep.json), not the reader's
    for key, value in expected.items():
        assert crashed[key] == value, key
    assert json.loads(crashed["params"]) == CRASHED_PARAMS


def test_tune_status_marks_scheduler_stops_and_truncated_lines_are_skipped(tmp_path):
    rng = np.random.default_rng(1)
    write_trial(tmp_path, "bbbbb_00000", 0, identity(seed=0), epoch_metrics(rng, 2), total_epochs=5)
    stopped = write_trial(tmp_path, "bbbbb_00001", 1, identity(seed=1), epoch_metrics(rng, 2), total_epochs=5)
    with (stopped / "result.json").open("a") as handle:
        handle.write('{"epoch": 3, "val_auc": 0.9')  # cut short by a crash mid-write
    write_experiment_state(tmp_path, {"bbbbb_00000": "RUNNING", "bbbbb_00001": "TERMINATED"})
    trials, epochs, *_ = build_tables(tmp_path)
    assert trials["status"].tolist() == ["INCOMPLETE", "STOPPED"]
    assert trials["tune_status"].tolist() == ["RUNNING", "TERMINATED"]
    assert epochs.groupby("trial_id").size().tolist() == [2, 2]


def test_rebuild_is_identical_and_writes_are_atomic(sweep, tables):
    again = build_tables(sweep)
    pd.testing.assert_frame_equal(again[0], tables[0])
    pd.testing.assert_frame_equal(again[1], tables[1])
    before = set(p.name for p in sweep.iterdir())
    paths = list(write_tables(sweep)[0].values())
    first = [p.read_bytes() for p in paths]
    assert list(write_tables(sweep)[0].values()) == paths and [p.read_bytes() for p in paths] == first  # byte-identical
    assert set(p.name for p in sweep.iterdir()) == before | {"trials.parquet", "epochs.parquet"}  # no temp files
    pd.testing.assert_frame_equal(read(sweep, "trials"), tables[0])
    pd.testing.assert_frame_equal(read(sweep, "epochs"), tables[1])
    assert len(pd.read_parquet(paths[0])) == len(tables[0])  # plain Parquet: pandas reads it as it is


def test_columns_are_plain_types(sweep, tables):
    for frame in tables:
        assert {str(dtype) for dtype in frame.dtypes} <= PLAIN_DTYPES
        assert not any(dtype == object for dtype in frame.dtypes)
    for path in write_tables(sweep)[0].values():
        types = {str(field.type) for field in pq.read_schema(path)}
        assert types <= {"string", "large_string", "int64", "double", "bool"}, types
    assert tables[0]["params"].map(lambda text: isinstance(json.loads(text), dict)).all()


def test_empty_sweep_and_bad_paths(tmp_path):
    write_sweep_json(tmp_path / "empty", "empty")
    trials, epochs, *_ = build_tables(tmp_path / "empty")
    assert trials.empty and list(trials.columns) == list(TRIAL_COLUMNS) and epochs.empty
    assert {str(d) for d in trials.dtypes} <= PLAIN_DTYPES
    with pytest.raises(UserError, match="does not exist"):
        build_tables(tmp_path / "missing")
    (tmp_path / "not_a_sweep").mkdir()
    with pytest.raises(UserError, match="no sweep found in"):
        find_sweep_dirs(tmp_path / "not_a_sweep")


def test_results_root_loads_every_sweep(tmp_path):
    paper_sweep(tmp_path, "a", seeds=1, epochs=2, crashed=False)
    lambda_sweep(tmp_path, "b", seeds=1, epochs=2)
    assert [p.name for p in find_sweep_dirs(tmp_path)] == ["a", "b"]
    trials, epochs, *_ = load_tables(tmp_path)
    assert set(trials["sweep"]) == {"a", "b"} and len(trials) == (7 + 1) + (2 * 9 + 1)
    # A sweep copied without its trial directories is read from its Parquet tables.
    write_tables(tmp_path / "a")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("trials.parquet", "epochs.parquet"):
        (copy / name).write_bytes((tmp_path / "a" / name).read_bytes())
    copied = load_tables(copy).trials
    pd.testing.assert_frame_equal(copied, build_tables(tmp_path / "a")[0])


def test_summary_mean_and_sample_std_match_numpy(tables):
    trials, _ = tables
    summary, excluded = summarize(trials)
    assert excluded == {"ERROR": 1, "INCOMPLETE": 1}
    done = trials[trials["status"] == "TERMINATED"]
    assert summary["n"].sum() == len(done)
    for row in summary.itertuples():
        group = done[done["paper_name"] == row.paper_name]
        for metric in ("test_ap", "test_auc"):
            values = group[metric].to_numpy(dtype=float)
            assert getattr(row, f"{metric}_mean") == pytest.approx(np.mean(values))
            assert getattr(row, f"{metric}_std") == pytest.approx(np.std(values, ddof=1))
    assert summary["paper_name"].tolist() == [
        "VGG-16", "VGG-16-GAP", "Mel-CNN", "AttnMel-CNN", "AttnMel-CNN-Dermo", "AttnMel-CNN-Lesion", "AttnMel-CNN-Bkg",
    ]  # fmt: skip
    text = format_summary(summary, excluded)
    first = summary.iloc[0]
    assert f"{first.test_ap_mean:.3f} ± {first.test_ap_std:.3f}" in text
    assert "excluded 2 trial(s)" in text and "ERROR 1" in text and "paper AP" not in text


def test_paper_columns_equal_the_paper_csv(tables):
    summary, excluded = summarize(tables[0])
    with (REPO / "orchestrator" / "results" / "paper_results.csv").open() as handle:
        paper = {(r["dataset"], r["model"]): r for r in csv.DictReader(handle)}
    for row in summary.itertuples():
        facts = paper[(row.dataset, row.paper_name)]
        assert row.paper_ap == float(facts["ap"]) and row.paper_auc == float(facts["auc"])
        assert row.auc_diff == pytest.approx(row.test_auc_mean - float(facts["auc"]))
    text = format_summary(summary, excluded, paper=True)
    assert "paper AUC" in text and f"{float(paper[('isic2017', 'AttnMel-CNN-Lesion')]['auc']):.3f}" in text
    shared = REPO.parent / "shared" / "paper" / "paper_results.csv"
    if shared.exists():  # the project's copy is the shared fact sheet, unchanged
        assert (REPO / "orchestrator" / "results" / "paper_results.csv").read_text() == shared.read_text()


def test_single_seed_shows_a_dash_and_other_lambdas_are_listed_apart(tmp_path):
    sweep_dir, grid = lambda_sweep(tmp_path, seeds=1, epochs=2)
    summary, _ = summarize(build_tables(sweep_dir)[0])
    in_paper = summary[summary["in_paper"]]
    assert set(in_paper["paper_name"]) == {"AttnMel-CNN", "AttnMel-CNN-Lesion", "AttnMel-CNN-Dermo"}
    assert ((in_paper["lambda1"] == 0.0) | (in_paper["lambda1"] == 0.001)).all()
    assert summary["test_auc_std"].isna().all() and (summary["n"] == 1).all()
    assert summary[~summary["in_paper"]]["paper_auc"].isna().all()  # no paper numbers beside them
    text = format_summary(summary, {}, paper=True)
    assert "other λ settings (not in the paper)" in text and "± —" in text
    assert len(summary) == 2 * len(grid) ** 2 + 1


def test_cli_report_build_and_show(tmp_path):
    sweep_dir = paper_sweep(tmp_path, "cli", seeds=2, epochs=2, crashed=False)
    run = [sys.executable, "-m", "orchestrator.cli", "report"]
    built = subprocess.run([*run, "build", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert built.returncode == 0, built.stderr
    assert (sweep_dir / "trials.parquet").exists() and "15 trials (ERROR 1, TERMINATED 14)" in built.stdout
    shown = subprocess.run([*run, "show", str(sweep_dir), "--paper"], capture_output=True, text=True, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    assert "AttnMel-CNN-Lesion" in shown.stdout and "0.883" in shown.stdout and "Δ AUC" in shown.stdout
    missing = subprocess.run([*run, "show", str(tmp_path / "nope")], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_results_modules_never_import_ray():
    # report also imports orchestrator.sweep.spec (lazily) for trials that died before reporting.
    code = (
        "import sys, orchestrator.results.build, orchestrator.results.query, orchestrator.results.plots, orchestrator.cli.results, "
        "orchestrator.sweep.spec; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_epoch_lost_with_a_dead_node_comes_from_the_runs_own_log(tmp_path):
    """Node death after a checkpoint reached storage but before its result reached the driver:
    result.json lacks that epoch, the retry resumed after it; the final checkpoint's
    epochs.jsonl still has it, and the tables take it from there."""
    rows = epoch_metrics(np.random.default_rng(3), 3)
    rows[1]["val_auc"] = 0.99  # the lost epoch is the best one: selection must see it
    trial_dir = write_trial(tmp_path, "ccccc_00000", 0, identity(), [rows[0], rows[2]], total_epochs=3)
    final = trial_dir / "checkpoint_000002"
    final.mkdir()
    (final / "final.json").write_text("{}")
    (final / "epochs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    trials, epochs, *_ = build_tables(tmp_path)
    assert epochs["epoch"].tolist() == [1, 2, 3] and trials.iloc[0]["epochs_run"] == 3
    assert trials.iloc[0]["best_epoch"] == 2 and trials.iloc[0]["val_auc"] == 0.99


def test_trials_carry_operating_points_and_calibration_from_their_predictions(tmp_path):
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, roc_curve

    from _results_fixtures import scored_sweep

    sweep_dir, truth = scored_sweep(tmp_path, unscored=(("melcnn", "none"),))
    trials = build_tables(sweep_dir).trials.set_index("trial_id")
    preds = truth["predictions"]
    for tid in truth["predictions"]["trial_id"].unique():
        test = preds[(preds["trial_id"] == tid) & (preds["split"] == "test")]
        y, p = test["label"].to_numpy(), test["prob"].to_numpy()
        row = trials.loc[tid]
        assert row["test_brier"] == pytest.approx(brier_score_loss(y, p))
        fpr, tpr, _ = roc_curve(y, p)  # continuous scores: no ties, the curve is a step per image
        for spec in (82, 89, 95):
            assert row[f"test_sens_at_spec{spec}"] == pytest.approx(np.interp(1 - spec / 100, fpr, tpr))
        for sens in (82, 89, 95):  # the challenge's: specificity at the first point reaching the sensitivity
            assert row[f"test_spec_at_sens{sens}"] == pytest.approx(1 - fpr[np.argmax(tpr >= sens / 100)])
        observed, predicted = calibration_curve(y, p, n_bins=10)
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
        counts = counts[counts > 0]
        assert row["test_ece10"] == pytest.approx(np.sum(counts * np.abs(observed - predicted)) / len(y))
    unscored = [tid for tid, ident in truth["trials"].items() if ident["paper_name"] == "Mel-CNN"]
    assert trials.loc[unscored, ["test_brier", "test_ece10", "test_sens_at_spec95", "test_spec_at_sens82"]
                      ].isna().all().all()


# --------------------------------------------------------------------------- files cut short

_CUT_KINDS = ["params.json", "result.json", "final.json", "predictions.csv", "attention.json", "epochs.jsonl"]


def _cut_points(size: int) -> list[int]:
    """Both ends and a spread in between: where a full disk can stop a copy."""
    return sorted({0, 1, 2, size // 7, size // 3, size // 2, 2 * size // 3, size - 2, size - 1} & set(range(size)))


@pytest.mark.parametrize("kind", _CUT_KINDS)
def test_a_file_cut_short_damages_its_trial_only_and_never_crashes(tmp_path, kind):
    """Property over cut points, for each file kind the tables read: the trial with the cut file
    is DAMAGED with the file named (its checkpoint's predictions left out), every other trial
    is tabled as before. result.json is an append log whose lost tail the final checkpoint's
    epochs.jsonl gives back: cut anywhere, its trial keeps its numbers."""
    from _results_fixtures import scored_sweep

    sweep, truth = scored_sweep(tmp_path, signals={("vgg16_gap", "none"): 1.0, ("attnmel", "lesion"): 2.0}, seeds=1,
                                n_test=9, n_val=6)  # fmt: skip
    before = build_tables(sweep)
    victim = sorted(p for p in sweep.iterdir() if p.is_dir())[0]
    path = victim / kind if kind in ("params.json", "result.json") else victim / "checkpoint_000001" / kind
    data = path.read_bytes()
    keep = ["status", "best_epoch", "val_auc", "test_auc", "test_ap", "epochs_run"]
    others = before.trials[before.trials["trial_dir"] != victim.name].set_index("trial_id")[keep]
    for at in _cut_points(len(data)):
        path.write_bytes(data[:at])
        built = build_tables(sweep)
        row = built.trials.set_index("trial_dir").loc[victim.name]
        if kind == "result.json":
            assert row["status"] == "TERMINATED", (at, row["error"])
            expected = before.trials.set_index("trial_dir").loc[victim.name]
            assert [row[k] for k in keep[1:]] == [expected[k] for k in keep[1:]], at
        else:
            assert row["status"] == "DAMAGED" and kind in row["error"], (at, row["error"])
            if kind != "params.json":
                assert row["trial_id"] not in set(built.predictions["trial_id"]) | set(built.attention["trial_id"])
        rest = built.trials[built.trials["trial_dir"] != victim.name].set_index("trial_id")[keep]
        pd.testing.assert_frame_equal(rest, others)
        assert len(built.predictions[built.predictions["trial_id"].isin(others.index)]) == len(
            truth["predictions"][truth["predictions"]["trial_id"].isin(others.index)])
    path.write_bytes(data)


def test_damaged_trials_are_named_in_report_build_and_its_summary(tmp_path, capsys):
    from _results_fixtures import scored_sweep
    from orchestrator.cli import main

    sweep, _ = scored_sweep(tmp_path, signals={("vgg16_gap", "none"): 1.0}, seeds=2, n_test=9, n_val=6)
    victim = sorted(p for p in sweep.iterdir() if p.is_dir())[0]
    (victim / "checkpoint_000001" / "predictions.csv").write_bytes(b"split,image_id,la")
    assert main(["report", "build", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert f"{sweep}/{victim.name}: damaged: checkpoint_000001/predictions.csv is 17 bytes" in out
    assert "DAMAGED 1" in out
    from orchestrator.results.summary import summary_report

    out, _ = summary_report(load_tables(sweep), intervals=False)  # what `report show` prints
    assert f"damaged trial {victim.name}: damaged: checkpoint_000001/predictions.csv" in out
    assert "excluded 1 trial(s) that did not finish: DAMAGED 1" in out


def test_a_cut_parquet_table_is_one_line_naming_it(tmp_path):
    sweep, _ = lambda_sweep(tmp_path, seeds=1, epochs=2)
    write_tables(sweep)
    for trial_dir in [p for p in sweep.iterdir() if p.is_dir()]:
        for p in sorted(trial_dir.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        trial_dir.rmdir()
    table = sweep / "trials.parquet"
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    with pytest.raises(UserError, match=r"trials.parquet is damaged .* not here to rebuild it"):
        load_tables(sweep)
