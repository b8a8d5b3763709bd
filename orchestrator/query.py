"""SQL over every sweep's result tables under a results root (DuckDB reads the Parquet files).

The views ``trials`` and ``epochs`` union the ``trials.parquet`` / ``epochs.parquet`` of all
sweeps found below the root (``attnmel report build`` writes them; a sweep run writes them
at its end), so one query can compare sweeps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pandas as pd

from attnmel.errors import UserError
from orchestrator.report import EPOCHS_FILE, TRIALS_FILE

__all__ = ["FORMATS", "connect", "format_frame", "results_root", "run_query"]

FORMATS = ("table", "csv", "json")
DEFAULT_RESULTS = "results"
RESULTS_ENV = "ATTNMEL_RESULTS"


def results_root(path: str | Path | None = None) -> Path:
    """The results root: ``path``, else ``$ATTNMEL_RESULTS``, else ``./results``."""
    return Path(path or os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(root: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views ``trials`` and ``epochs`` over ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"results directory {root} does not exist (set --results or ${RESULTS_ENV})")
    con = duckdb.connect(":memory:")
    found = 0
    for view, filename in (("trials", TRIALS_FILE), ("epochs", EPOCHS_FILE)):
        # `**` also matches zero directories, so the root may itself be one sweep directory.
        pattern = _sql_string(str(root / "**" / filename))
        (count,) = con.execute(f"SELECT count(*) FROM glob({pattern})").fetchone()
        if count:
            found += count
            con.execute(
                f"CREATE VIEW {view} AS SELECT * FROM read_parquet({pattern}, union_by_name = true, "
                "hive_partitioning = false)"
            )
    if not found:
        con.close()
        raise UserError(
            f"no {TRIALS_FILE} or {EPOCHS_FILE} under {root}; run `attnmel report build {root}` first"
        )
    return con


def run_query(sql: str, root: str | Path) -> pd.DataFrame:
    """Run one SQL statement against the ``trials`` and ``epochs`` views of ``root``."""
    con = connect(root)
    try:
        result = con.execute(sql)
        if result.description is None:  # a statement without rows (e.g. SET)
            return pd.DataFrame()
        return result.df()
    except duckdb.Error as exc:
        # DuckDB messages carry a caret diagram on later lines; the first says what is wrong.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"query failed: {first}") from None
    finally:
        con.close()


def format_frame(frame: pd.DataFrame, fmt: str = "table") -> str:
    """Render a result as an aligned text table, CSV, or a JSON array of row objects."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        # Via pandas' own encoder (NaN → null, numpy scalars → numbers), then pretty-printed.
        records = json.loads(frame.to_json(orient="records", double_precision=15, date_format="iso"))
        return json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    if fmt != "table":
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if frame.empty:
        return ("(no rows)" if len(frame.columns) == 0 else frame.to_string(index=False)) + "\n(0 rows)\n"
    with pd.option_context("display.max_colwidth", 60, "display.width", None):
        text = frame.to_string(index=False)
    return f"{text}\n({len(frame)} row{'s' if len(frame) != 1 else ''})\n"
