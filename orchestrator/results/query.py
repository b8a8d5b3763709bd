"""SQL over every sweep's result tables under a results root (DuckDB reads the Parquet files).

The tables ``trials`` and ``epochs`` (and ``predictions`` / ``attention`` where sweeps wrote
them) union the Parquet files of every sweep found below the root, so one query can compare
sweeps. By default the query runs in a sandbox: the tables are loaded into an in-memory
database and DuckDB is then locked down, so SQL can read them and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from attnmel.errors import UserError
from orchestrator.layout.root import RESULTS_ENV
from orchestrator.results.tables import FILES

__all__ = ["FORMATS", "TABLES", "SANDBOX", "connect", "format_frame", "run_query"]

FORMATS = ("table", "csv", "json")
# SQL name → the file each sweep folder may hold (the first two are always written)
TABLES = FILES
# DuckDB's "Securing DuckDB" settings: no files, network or extensions, then no way back.
SANDBOX = (
    "SET enable_external_access = false",  # no COPY, ATTACH, read_*/glob, extension loading
    "SET allow_community_extensions = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET lock_configuration = true",  # last: every setting above is now final
)
# Only settable when the database starts: no persistent secrets, no unsigned extensions.
_STARTUP = {"allow_persistent_secrets": False, "allow_unsigned_extensions": False}


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: duckdb.Error) -> str:
    # DuckDB messages carry a caret diagram on later lines; the first says what is wrong.
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(root: str | Path, *, unsafe: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection holding the result tables found under ``root``.

    Sandboxed (the default), the tables are copied into memory and the connection can then
    read nothing else: DuckDB resolves a view's file reads at query time, which the lock-down
    forbids. ``unsafe`` keeps views over the files and DuckDB's full access to files,
    network and extensions.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"results directory {root} does not exist (set --results or ${RESULTS_ENV})")
    con = duckdb.connect(":memory:", config={} if unsafe else _STARTUP)
    found = 0
    for name, filename in TABLES.items():
        # `**` also matches zero directories, so the root may itself be one sweep directory.
        pattern = _sql_string(str(root / "**" / filename))
        (count,) = con.execute(f"SELECT count(*) FROM glob({pattern})").fetchone()
        if count:
            found += name in ("trials", "epochs")
            kind = "VIEW" if unsafe else "TABLE"
            try:
                con.execute(
                    f"CREATE {kind} {name} AS SELECT * FROM read_parquet({pattern}, union_by_name = true, "
                    "hive_partitioning = false)"
                )
            except duckdb.Error as exc:
                con.close()
                raise UserError(f"cannot read the {filename} files under {root}: {_first_line(exc)}") from None
    if not found:
        con.close()
        raise UserError(f"no {FILES['trials']} or {FILES['epochs']} under {root}; run `attnmel report build {root}` first")
    if not unsafe:
        for statement in SANDBOX:
            con.execute(statement)
    return con


def run_query(sql: str, root: str | Path, *, unsafe: bool = False) -> pd.DataFrame:
    """Run one SQL statement against the result tables of ``root`` (sandboxed unless ``unsafe``)."""
    con = connect(root, unsafe=unsafe)
    try:
        result = con.execute(sql)
        if result.description is None:  # a statement without rows (e.g. SET)
            return pd.DataFrame()
        return result.df()
    except duckdb.Error as exc:
        raise UserError(f"query failed: {_first_line(exc)}") from None
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
