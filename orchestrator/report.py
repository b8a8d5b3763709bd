"""A sweep's storage directory → the ``trials`` and ``epochs`` Parquet tables.

Reads only files (``sweep.json`` and each Tune trial directory's ``params.json``,
``result.json`` and ``error.txt``), never Ray, so it works after a crash and on a copy of
a sweep that ran elsewhere. The tables hold plain columns (strings, 64-bit ints, floats,
bools), sorted rows and nothing that depends on when they were built, so rebuilding from
the same files gives the same rows.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from attnmel.errors import UserError
from attnmel.selection import best_epoch_row

__all__ = [
    "EPOCH_COLUMNS",
    "TRIAL_COLUMNS",
    "build_tables",
    "find_sweep_dirs",
    "load_tables",
    "terminated",
    "write_tables",
]

log = logging.getLogger(__name__)

TRIALS_FILE, EPOCHS_FILE = "trials.parquet", "epochs.parquet"

# Column → dtype. Nullable "Int64"/"boolean" store as plain Parquet int64/bool with nulls
# (a trial that died before its first epoch has no best epoch). `status`: TERMINATED when the
# last result says done; ERROR when it failed for good (error.txt, or Tune says so); STOPPED
# when Tune ended it early (a scheduler such as ASHA); INCOMPLETE otherwise (running, or the
# driver died). `tune_status` is Tune's own word from its experiment state, when readable;
# `error` the last line of error.txt; `restarts` how often a retry or resume reported again.
TRIAL_COLUMNS: dict[str, str] = {
    "sweep": "str",
    "trial_id": "str",
    "trial_dir": "str",
    "dataset": "str",
    "variant": "str",
    "paper_name": "str",
    "roi": "str",
    "seed": "Int64",
    "lambda1": "float64",
    "lambda2": "float64",
    "backbone": "str",
    "weights": "str",
    "pretrained": "boolean",
    "best_epoch": "Int64",
    "val_auc": "float64",
    "val_ap": "float64",
    "test_auc": "float64",
    "test_ap": "float64",
    "epochs_run": "int64",
    "wall_seconds": "float64",
    "status": "str",
    "tune_status": "str",
    "error": "str",
    "num_failures": "int64",
    "restarts": "int64",
    "node_ip": "str",
    "node_id": "str",
    "config_hash": "str",
    "code_version": "str",
    "params": "str",
}

EPOCH_COLUMNS: dict[str, str] = {
    "sweep": "str",
    "trial_id": "str",
    "epoch": "int64",
    "lr": "float64",
    "train_loss": "float64",
    "train_cls_loss": "float64",
    "train_dice3": "float64",
    "train_dice4": "float64",
    "val_auc": "float64",
    "val_ap": "float64",
    "test_auc": "float64",
    "test_ap": "float64",
    "epoch_seconds": "float64",
    "images_per_second": "float64",
}

# Every result `fit` yields carries these (docs/internals.md, "Identity fields of a run").
IDENTITY_FIELDS = (
    "dataset", "variant", "roi", "paper_name", "seed", "lambda1", "lambda2",
    "backbone", "weights", "pretrained", "config_hash", "code_version",
)  # fmt: skip

# Tune names trial directories "<trainable>_<trial id>_<tag>_<date>"; grid/random search ids
# are "<5 hex>_<5 digits>", other searchers' ids 8 hex digits.
_TRIAL_ID_PATTERNS = (
    re.compile(r"(?:^|_)([0-9a-f]{5}_\d{5})(?=_|$)"),
    re.compile(r"(?:^|_)([0-9a-f]{8})(?=_|$)"),
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --------------------------------------------------------------------------- reading


def _trial_dirs(sweep_dir: Path) -> list[Path]:
    """Tune trial directories: the sub-directories of the sweep holding a ``params.json``."""
    return sorted(p.parent for p in sweep_dir.glob("*/params.json"))


def _read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of ``result.json`` in file order; skips a line cut short by a crash."""
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s: line %d is not JSON (cut short by a crash?); skipped", path, number)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _read_error(path: Path) -> tuple[str | None, int]:
    """(last line of the last failure, number of failures) from Tune's ``error.txt``."""
    if not path.exists():
        return None, 0
    lines = [_ANSI.sub("", line).strip() for line in path.read_text(errors="replace").splitlines()]
    # Tune appends "Failure # N (occurred at <date>)" then the traceback for each failure.
    failures = sum(line.startswith("Failure #") for line in lines)
    message = next((line for line in reversed(lines) if line and not line.startswith("Failure #")), None)
    return message or "error (error.txt is empty)", max(failures, 1)


def _tune_statuses(sweep_dir: Path) -> dict[str, str]:
    """trial id → Tune's own status, from the newest ``experiment_state-*.json``.

    Best effort: the file is Tune's internal checkpoint of the experiment, so any surprise
    in its shape means "unknown" rather than an error.
    """
    states = sorted(sweep_dir.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        data = json.loads(states[-1].read_text())
        statuses = {}
        for trial_state, _metadata in data["trial_data"]:
            state = json.loads(trial_state) if isinstance(trial_state, str) else trial_state
            statuses[str(state["trial_id"])] = str(state["status"])
        return statuses
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: cannot read Tune's trial statuses (%s); ignoring it", states[-1], exc)
        return {}


def _trial_id(trial_dir: Path, rows: list[dict[str, Any]]) -> str:
    for row in reversed(rows):
        if row.get("trial_id"):
            return str(row["trial_id"])
    for pattern in _TRIAL_ID_PATTERNS:
        match = pattern.search(trial_dir.name)
        if match:
            return match.group(1)
    return trial_dir.name


def _identity_from_params(params: dict[str, Any], trial_dir: Path) -> dict[str, Any]:
    """Identity of a trial that died before reporting anything, from its ``params.json``."""
    try:
        # Imported here: only needed for such trials, and they pull in the training stack.
        from attnmel.train import run_identity
        from orchestrator.spec import trial_config

        return run_identity(trial_config(params))
    except Exception as exc:  # a report must still list the trial, identity unknown
        log.warning("%s: cannot derive the trial's identity from params.json (%s)", trial_dir, exc)
        return {}


def _dedupe_epochs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch, the last one reported (a restored trial may repeat epochs)."""
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.get("epoch") is not None:
            by_epoch[int(row["epoch"])] = row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _trial_tables(
    sweep: str, trial_dir: Path, tune_statuses: dict[str, str], sweep_code_version: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One trials row and its epochs rows for one trial directory."""
    rows = _read_results(trial_dir / "result.json")
    try:
        params = json.loads((trial_dir / "params.json").read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable params.json (%s)", trial_dir, exc)
        params = {}
    trial_id = _trial_id(trial_dir, rows)
    last = rows[-1] if rows else {}
    identity = {k: last.get(k) for k in IDENTITY_FIELDS}
    if any(value is None for value in identity.values()):  # died before its first result
        derived = _identity_from_params(params, trial_dir)
        if derived and sweep_code_version:
            # The code the sweep ran, not the code reading it now: rebuilds stay identical.
            derived["code_version"] = sweep_code_version
        identity = {k: derived.get(k) if v is None else v for k, v in identity.items()}

    epochs = _dedupe_epochs(rows)
    best = best_epoch_row(epochs)
    reported = last.get("best_epoch")
    if best is not None and reported is not None and int(reported) != int(best["epoch"]):
        log.warning(
            "%s: best epoch recomputed from validation AUC is %s but the trial reported %s; using %s",
            trial_dir, best["epoch"], reported, best["epoch"],
        )  # fmt: skip

    error, num_failures = _read_error(trial_dir / "error.txt")
    tune_status = tune_statuses.get(trial_id)
    if bool(last.get("done", False)):
        status = "TERMINATED"
    elif error is not None or tune_status == "ERROR":
        status = "ERROR"
    elif tune_status == "TERMINATED":
        status = "STOPPED"  # ended by Tune (e.g. an ASHA scheduler) before its last epoch
    else:
        status = "INCOMPLETE"

    if "time_total_s" in last:
        wall = _float(last["time_total_s"])
    elif epochs:
        wall = float(sum(_float(r.get("epoch_seconds")) for r in epochs))
    else:
        wall = math.nan
    # Each (re)start of the trainable reports iterations_since_restore == 1 first.
    starts = sum(1 for r in rows if r.get("iterations_since_restore") == 1)

    trial = {
        "sweep": sweep,
        "trial_id": trial_id,
        "trial_dir": trial_dir.name,
        **{k: identity.get(k) for k in IDENTITY_FIELDS},
        "best_epoch": best["epoch"] if best else None,
        **{k: best.get(k) if best else None for k in ("val_auc", "val_ap", "test_auc", "test_ap")},
        "epochs_run": len(epochs),
        "wall_seconds": wall,
        "status": status,
        "tune_status": tune_status,
        "error": error,
        "num_failures": num_failures,
        "restarts": max(starts - 1, 0),
        "node_ip": last.get("node_ip"),
        "node_id": last.get("node_id"),  # Ray's node id tells apart nodes that share one host
        "params": json.dumps(params, sort_keys=True, default=str),
    }
    metrics = [k for k in EPOCH_COLUMNS if k not in ("sweep", "trial_id")]
    epoch_rows = [{"sweep": sweep, "trial_id": trial_id, **{k: row.get(k) for k in metrics}} for row in epochs]
    return trial, epoch_rows


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _typed_frame(records: list[dict[str, Any]], columns: dict[str, str], sort_by: list[str]) -> pd.DataFrame:
    """Records → a frame with exactly ``columns`` in their dtypes, rows sorted."""
    frame = pd.DataFrame.from_records(records, columns=list(columns))
    for name, dtype in columns.items():
        values = frame[name]
        if dtype in ("float64",):
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        elif dtype in ("int64", "Int64"):
            values = pd.to_numeric(values, errors="coerce").astype("Int64")
            if dtype == "int64":
                values = values.fillna(0).astype("int64")
        elif dtype == "boolean":
            values = values.map(lambda v: None if _missing(v) else bool(v)).astype("boolean")
        else:
            values = values.map(lambda v: None if _missing(v) else str(v)).astype("str")
        frame[name] = values
    return frame.sort_values(sort_by, kind="stable").reset_index(drop=True)


def _sweep_meta(sweep_dir: Path) -> dict[str, Any]:
    """``sweep.json`` (name, spec, code_version), or ``{}`` when absent or unreadable."""
    meta = sweep_dir / "sweep.json"
    if not meta.exists():
        return {}
    try:
        data = json.loads(meta.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); using the directory name", meta, exc)
        return {}


def build_tables(sweep_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a sweep's storage directory into the ``(trials, epochs)`` frames."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"sweep directory {sweep_dir} does not exist")
    meta = _sweep_meta(sweep_dir)
    sweep = str(meta.get("name") or sweep_dir.name)
    statuses = _tune_statuses(sweep_dir)
    trials, epochs = [], []
    for trial_dir in _trial_dirs(sweep_dir):
        trial, rows = _trial_tables(sweep, trial_dir, statuses, meta.get("code_version"))
        trials.append(trial)
        epochs.extend(rows)
    return (
        _typed_frame(trials, TRIAL_COLUMNS, ["sweep", "trial_id", "trial_dir"]),
        _typed_frame(epochs, EPOCH_COLUMNS, ["sweep", "trial_id", "epoch"]),
    )


def write_tables(sweep_dir: str | Path) -> tuple[Path, Path]:
    """Build the tables and write ``trials.parquet`` and ``epochs.parquet`` atomically."""
    sweep_dir = Path(sweep_dir)
    trials, epochs = build_tables(sweep_dir)
    targets = (sweep_dir / TRIALS_FILE, sweep_dir / EPOCHS_FILE)
    temps = [target.with_name(f".{target.name}.tmp-{os.getpid()}") for target in targets]
    try:
        # Both temporaries first, then the renames: a crash never leaves a half-written table.
        for frame, tmp in zip((trials, epochs), temps):
            frame.to_parquet(tmp, index=False)
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return targets


# --------------------------------------------------------------------------- loading


def _is_sweep_dir(path: Path) -> bool:
    return (path / "sweep.json").exists() or (path / TRIALS_FILE).exists() or bool(_trial_dirs(path))


def find_sweep_dirs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a sweep directory, else the sweep directories inside it."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"results path {path} does not exist or is not a directory")
    if _is_sweep_dir(path):
        return [path]
    found = sorted(child for child in path.iterdir() if child.is_dir() and _is_sweep_dir(child))
    if not found:
        raise UserError(f"no sweep found in {path} (expected sweep.json or Tune trial directories)")
    return found


def load_tables(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials and epochs of a sweep directory or of every sweep under a results root.

    Built fresh from the trial directories when they are there (so a running or crashed
    sweep shows its latest state), else read from the sweep's Parquet files.
    """
    trials, epochs = [], []
    for sweep_dir in find_sweep_dirs(path):
        if _trial_dirs(sweep_dir) or not (sweep_dir / TRIALS_FILE).exists():
            t, e = build_tables(sweep_dir)
        else:
            t = pd.read_parquet(sweep_dir / TRIALS_FILE)
            epochs_file = sweep_dir / EPOCHS_FILE
            e = pd.read_parquet(epochs_file) if epochs_file.exists() else _typed_frame([], EPOCH_COLUMNS, ["sweep"])
        trials.append(t)
        epochs.append(e)
    return (
        pd.concat(trials, ignore_index=True) if len(trials) > 1 else trials[0],
        pd.concat(epochs, ignore_index=True) if len(epochs) > 1 else epochs[0],
    )


def terminated(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The trials that ran to their last epoch, and how many others were left out by status."""
    done = trials["status"] == "TERMINATED"
    excluded = trials.loc[~done, "status"].value_counts().sort_index()
    return trials[done].reset_index(drop=True), {str(k): int(v) for k, v in excluded.items()}
