"""orchestrator.query: SQL over every sweep's Parquet tables under a results root."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from attnmel.errors import UserError
from orchestrator.query import format_frame, results_root, run_query
from orchestrator.report import build_tables, write_tables

try:  # tests/orchestrator as a package or as a plain directory on sys.path
    from ._results_fixtures import lambda_sweep, paper_sweep
except ImportError:
    from _results_fixtures import lambda_sweep, paper_sweep

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for sweep_dir in (paper_sweep(root, "paper", seeds=2, epochs=3, crashed=False), lambda_sweep(root, seeds=1)[0]):
        write_tables(sweep_dir)
    return root


@pytest.fixture(scope="module")
def frames(root) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = [build_tables(root / name) for name in ("paper", "lambda")]
    return pd.concat([p[0] for p in parts], ignore_index=True), pd.concat([p[1] for p in parts], ignore_index=True)


def test_views_union_every_sweep(root, frames):
    trials, epochs = frames
    counts = run_query("SELECT sweep, count(*) AS n FROM trials GROUP BY sweep ORDER BY sweep", root)
    assert counts.to_dict("list") == {"sweep": ["lambda", "paper"], "n": [19, 15]}
    (n_epochs,) = run_query("SELECT count(*) AS n FROM epochs", root)["n"]
    assert n_epochs == len(epochs)


def test_aggregates_match_pandas(root, frames):
    trials, _ = frames
    sql = """SELECT paper_name, avg(test_auc) AS auc, count(*) AS n FROM trials
             WHERE status = 'TERMINATED' AND sweep = 'paper' GROUP BY paper_name ORDER BY paper_name"""
    got = run_query(sql, root).set_index("paper_name")
    done = trials[(trials["status"] == "TERMINATED") & (trials["sweep"] == "paper")]
    expected = done.groupby("paper_name")["test_auc"].agg(["mean", "size"])
    assert list(got.index) == sorted(expected.index)
    for name, row in got.iterrows():
        assert row["auc"] == pytest.approx(expected.loc[name, "mean"]) and row["n"] == expected.loc[name, "size"]


def test_join_trials_and_epochs_finds_the_best_epoch(root):
    # The best epoch's validation AUC is the trial's maximum: the two tables agree.
    sql = """SELECT t.trial_id, t.val_auc, max(e.val_auc) AS max_val FROM trials t
             JOIN epochs e USING (sweep, trial_id) GROUP BY ALL"""
    frame = run_query(sql, root)
    assert len(frame) > 0 and (frame["val_auc"] == frame["max_val"]).all()


def test_csv_and_json_formats_round_trip(root):
    frame = run_query("SELECT trial_id, seed, test_auc, error FROM trials ORDER BY sweep, trial_id", root)
    from_csv = pd.read_csv(io.StringIO(format_frame(frame, "csv")))
    assert from_csv["trial_id"].tolist() == frame["trial_id"].tolist()
    assert from_csv["test_auc"].tolist() == pytest.approx(frame["test_auc"].tolist())
    records = json.loads(format_frame(frame, "json"))
    assert [r["trial_id"] for r in records] == frame["trial_id"].tolist()
    assert [r["test_auc"] for r in records] == pytest.approx(frame["test_auc"].tolist())
    assert sum(r["error"] is not None for r in records) == frame["error"].notna().sum() == 2  # NaN → null
    table = format_frame(frame, "table")
    lines = table.splitlines()
    assert lines[-1] == f"({len(frame)} rows)" and len(lines) == len(frame) + 2
    assert len({len(line) for line in lines[:-1]}) == 1  # aligned columns


def test_bad_sql_and_missing_tables_are_one_line_user_errors(root, tmp_path):
    with pytest.raises(UserError) as bad:
        run_query("SELEC nonsense", root)
    assert "\n" not in str(bad.value) and "syntax error" in str(bad.value)
    with pytest.raises(UserError, match="no_such_table"):
        run_query("SELECT * FROM no_such_table", root)
    with pytest.raises(UserError, match=str(tmp_path)):
        run_query("SELECT 1", tmp_path)  # exists, holds no tables
    with pytest.raises(UserError, match="does not exist"):
        run_query("SELECT 1", tmp_path / "missing")


def test_results_root_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv("ATTNMEL_RESULTS", raising=False)
    assert results_root(None) == Path("results")
    monkeypatch.setenv("ATTNMEL_RESULTS", str(tmp_path))
    assert results_root(None) == tmp_path and results_root("elsewhere") == Path("elsewhere")


def test_cli_query(root):
    run = [sys.executable, "-m", "orchestrator.cli", "query"]
    ok = subprocess.run(
        [*run, "SELECT count(*) AS n FROM trials", "--results", str(root), "--format", "csv"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["n", "34"]
    bad = subprocess.run([*run, "SELECT FROM WHERE", "--results", str(root)], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("attnmel: error: query failed:") and bad.stderr.count("\n") == 1
