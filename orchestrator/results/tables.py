"""The result tables: their schemas, file names, and how rows become Parquet and back.

Four tables per sweep folder, plain column types only (strings, 64-bit ints, doubles, bools,
nulls allowed), rows sorted by their key so a rebuild from the same files is byte-identical:

``trials``       one row per trial: identity, best validation epoch and its metrics (test
                 operating points and calibration from its predictions), status, and for each
                 external test set the best model's ``ext_<name>_auc`` / ``_ap`` (columns a
                 sweep without external sets does not have)
``epochs``       one row per trial and epoch: losses, lr, validation and test AP/AUC, timings
``predictions``  one row per trial, split and image: label and melanoma probability of the
                 best-validation-epoch model (every CI and paired test is computed from it);
                 ``dataset`` names the image's dataset, and an external set's rows have split
                 ``ext_<name>``
``attention``    one row per trial, map (pool3, pool4, cam) and split: Jaccard with the
                 lesion masks (the paper's Table 3)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from attnmel.atomic import atomic_output
from attnmel.metrics import CALIBRATION_BINS, OPERATING_SENSITIVITIES, OPERATING_SPECIFICITIES
from attnmel.record import IDENTITY, LOSS_TERMS, SPLIT_METRICS, is_external_metric
from orchestrator.layout.folders import PLACEMENT

__all__ = ["SCHEMAS", "FILES", "SORT_KEYS", "OPERATING_COLUMNS", "PLACEMENT_COLUMNS", "SENSITIVITY_COLUMNS",
           "SPECIFICITY_COLUMNS", "ResultTables", "schema_of",
           "to_arrow", "frame", "empty", "write", "read"]  # fmt: skip

_STR, _INT, _FLOAT, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_ARROW = {str: _STR, int: _INT, float: _FLOAT, bool: _BOOL}

# `status`: TERMINATED when the trial ran its last epoch; ERROR when it failed for good;
# STOPPED when Tune ended it early (a scheduler such as ASHA); INCOMPLETE otherwise (running,
# or the driver died). `tune_status` is Tune's own word; `error` the last line of error.txt;
# `restarts` how often a retry or resume reported again; `reported_at` when the trial last
# reported (Unix seconds: the trainable's clock, else Tune's whole-second `timestamp`): the
# latest one is when a sweep's work ended; with `started_at`, when each trial ran.
_IDENTITY = [(name, _ARROW[kind]) for name, kind in IDENTITY.items() if name not in ("config_hash", "code_version")]
_METRICS = [(name, _FLOAT) for name in SPLIT_METRICS]
PLACEMENT_COLUMNS = tuple(PLACEMENT)  # where each trial ran (node, GPU ids, shares, start)
_PLACEMENT = [(name, _ARROW[kind]) for name, kind in PLACEMENT.items()]
# Test-split operating points and calibration of the best-validation-epoch model, from the trial's
# predictions: the ISIC 2017 challenge's specificity at 82/89/95 % sensitivity (``test_spec_at_sens82``
# …, as its scorer computes it), as an extra sensitivity at those specificities (``test_sens_at_spec82``
# …), Brier score, expected calibration error over CALIBRATION_BINS equal-width bins.
SPECIFICITY_COLUMNS = {f"test_spec_at_sens{round(100 * s)}": s for s in OPERATING_SENSITIVITIES}
SENSITIVITY_COLUMNS = {f"test_sens_at_spec{round(100 * s)}": s for s in OPERATING_SPECIFICITIES}
OPERATING_COLUMNS = (*SPECIFICITY_COLUMNS, *SENSITIVITY_COLUMNS, "test_brier", f"test_ece{CALIBRATION_BINS}")

SCHEMAS: dict[str, pa.Schema] = {
    "trials": pa.schema(
        [("sweep", _STR), ("trial_id", _STR), ("trial_dir", _STR), *_IDENTITY, ("best_epoch", _INT), *_METRICS,
         *((name, _FLOAT) for name in OPERATING_COLUMNS), ("epochs_run", _INT), ("wall_seconds", _FLOAT), ("reported_at", _FLOAT),
         ("status", _STR), ("tune_status", _STR), ("error", _STR),
         ("num_failures", _INT), ("restarts", _INT), *_PLACEMENT, ("config_hash", _STR),
         ("code_version", _STR), ("params", _STR)]
    ),  # fmt: skip
    "epochs": pa.schema(
        [("sweep", _STR), ("trial_id", _STR), ("epoch", _INT), ("lr", _FLOAT), *((n, _FLOAT) for n in LOSS_TERMS),
         *_METRICS,
         ("epoch_seconds", _FLOAT), ("images_per_second", _FLOAT)]
    ),  # fmt: skip
    "predictions": pa.schema(
        [("sweep", _STR), ("trial_id", _STR), ("split", _STR), ("image_id", _STR), ("label", _INT), ("prob", _FLOAT),
         ("dataset", _STR)]
    ),  # fmt: skip
    "attention": pa.schema(
        [("sweep", _STR), ("trial_id", _STR), ("map", _STR), ("split", _STR), ("n_images", _INT),
         ("jaccard_mean", _FLOAT), ("jaccard_std", _FLOAT)]
    ),  # fmt: skip
}
FILES = {name: f"{name}.parquet" for name in SCHEMAS}
SORT_KEYS = {
    "trials": ("sweep", "trial_id", "trial_dir"),
    "epochs": ("sweep", "trial_id", "epoch"),
    "predictions": ("sweep", "trial_id", "split", "image_id"),
    "attention": ("sweep", "trial_id", "map", "split"),
}


class ResultTables(NamedTuple):
    """The four tables of one or more sweeps, as pandas frames."""

    trials: pd.DataFrame
    epochs: pd.DataFrame
    predictions: pd.DataFrame
    attention: pd.DataFrame


def _plain(value: Any, kind: pa.DataType) -> Any:
    """A value as the Python type its column stores; None for missing or unparseable."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value) and kind != _FLOAT):
        return None
    try:
        if kind == _STR:
            return str(value)
        if kind == _INT:
            return int(value)
        if kind == _FLOAT:
            return float(value)
        return bool(value)
    except (TypeError, ValueError):
        return None


def schema_of(name: str, rows: Iterable[Mapping[str, Any]] = ()) -> pa.Schema:
    """Table ``name``'s schema; for ``trials`` with a float column per external-set metric the
    rows carry (``attnmel.record.external_metrics``), sorted, after the fixed ones."""
    schema = SCHEMAS[name]
    if name != "trials":
        return schema
    extra = sorted({k for row in rows for k in row if is_external_metric(k)} - set(schema.names))
    return pa.schema([*schema, *((k, _FLOAT) for k in extra)])


def to_arrow(name: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts; missing keys are null) → the table ``name`` with its schema, sorted by its key."""
    rows = list(rows)
    schema = schema_of(name, rows)
    plain = [{f.name: _plain(row.get(f.name), f.type) for f in schema} for row in rows]
    keys = SORT_KEYS[name]
    plain.sort(key=lambda r: tuple("" if r[k] is None else r[k] for k in keys))
    return pa.Table.from_pylist(plain, schema=schema)


def frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow result table as pandas (nullable ints and bools where a column has nulls)."""
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get)


def empty(name: str) -> pd.DataFrame:
    """An empty frame with the columns and types of table ``name``."""
    return frame(SCHEMAS[name].empty_table())


def write(sweep_dir: Path, tables: Mapping[str, pa.Table]) -> dict[str, Path]:
    """Write each table to ``sweep_dir/<name>.parquet``: every temporary file first, then the
    renames, so a crash never leaves a half-written table. Leftovers of a killed write go."""
    for stale in sweep_dir.glob(".*.parquet.tmp-*"):
        stale.unlink(missing_ok=True)
    paths = {name: sweep_dir / FILES[name] for name in tables}
    with contextlib.ExitStack() as stack:  # the renames happen together, when every file is written
        for name, path in paths.items():
            pq.write_table(tables[name], stack.enter_context(atomic_output(path)))
    return paths


def read(sweep_dir: Path, name: str) -> pd.DataFrame | None:
    """Table ``name`` of a sweep folder from its Parquet file, or None when there is none."""
    path = sweep_dir / FILES[name]
    return frame(pq.read_table(path)) if path.exists() else None
