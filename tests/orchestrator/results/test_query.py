"""orchestrator.results.query: SQL over every sweep's Parquet tables under a results root."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from attnmel.errors import UserError
from orchestrator.layout.root import results_root
from orchestrator.results.query import format_frame, run_query
from orchestrator.results.build import build_tables, write_tables

from _results_fixtures import lambda_sweep, paper_sweep

REPO = Path(__file__).resolve().parents[3]


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


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 42) TO '{tmp}/x.csv'",
        "ATTACH '{tmp}/x.db' AS other",
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('{tmp}/*')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SELECT * FROM read_parquet('{root}/paper/trials.parquet')",  # even the result files themselves
    ],
)
def test_sandbox_refuses_files_network_extensions_and_settings(root, tmp_path, sql):
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    sql = sql.format(tmp=tmp_path, secret=secret, root=root)
    # refused by the sandbox itself, not by a missing network or extension
    with pytest.raises(UserError, match="^query failed: .*(Permission Error|configuration has been locked)") as info:
        run_query(sql, root)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.csv"]  # nothing written or attached


def test_sandbox_keeps_every_table_and_unsafe_lifts_it(root, tmp_path):
    sql = "SELECT (SELECT count(*) FROM trials) AS t, (SELECT count(*) FROM epochs) AS e"
    assert run_query(sql, root).to_dict("records") == run_query(sql, root, unsafe=True).to_dict("records")
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    frame = run_query(f"SELECT a + b AS s FROM read_csv('{secret}')", root, unsafe=True)
    assert frame["s"].tolist() == [3]
    run_query(f"COPY (SELECT 42 AS x) TO '{tmp_path}/x.csv'", root, unsafe=True)
    assert (tmp_path / "x.csv").read_text().split() == ["x", "42"]


def test_predictions_and_attention_tables_union_by_name(tmp_path):
    for sweep, extra in (("a", {}), ("b", {"fold": [1, 1]})):
        folder = tmp_path / sweep
        folder.mkdir()
        pd.DataFrame({"sweep": [sweep], "trial_id": ["t0"]}).to_parquet(folder / "trials.parquet")
        pd.DataFrame({"trial_id": ["t0", "t0"], "image_id": ["i1", "i2"], "prob": [0.25, 0.5], **extra}).to_parquet(
            folder / "predictions.parquet"
        )
    (tmp_path / "b" / "attention.parquet").write_bytes(
        pd.DataFrame({"image_id": ["i1"], "inside_roi": [0.75]}).to_parquet()
    )
    frame = run_query("SELECT image_id, prob, fold FROM predictions ORDER BY prob, fold NULLS FIRST", tmp_path)
    assert frame["prob"].tolist() == [0.25, 0.25, 0.5, 0.5]
    assert frame["fold"].isna().sum() == 2 and set(frame["fold"].dropna()) == {1}  # column only in sweep b
    assert run_query("SELECT sum(inside_roi) AS s FROM attention", tmp_path)["s"].tolist() == [0.75]
    (tmp_path / "b" / "attention.parquet").unlink()
    with pytest.raises(UserError, match="attention"):
        run_query("SELECT * FROM attention", tmp_path)  # no such files: no such table


def test_cli_query_sandbox_and_unsafe(root, tmp_path):
    run = [sys.executable, "-m", "orchestrator.cli", "query", "--results", str(root), "--format", "csv"]
    target = tmp_path / "x.csv"
    refused = subprocess.run([*run, f"COPY (SELECT 42) TO '{target}'"], capture_output=True, text=True, cwd=REPO)
    assert refused.returncode == 2 and not target.exists()
    assert refused.stderr.startswith("attnmel: error: query failed:") and refused.stderr.count("\n") == 1
    allowed = subprocess.run(
        [*run, "--unsafe", f"COPY (SELECT 42 AS x) TO '{target}'"], capture_output=True, text=True, cwd=REPO
    )
    assert allowed.returncode == 0, allowed.stderr
    assert target.read_text().split() == ["x", "42"]

