"""A sweep's storage folder → the rows of its result tables (see :mod:`orchestrator.results.tables`).

Reads only files (``sweep.json``; each Tune trial directory's ``params.json``,
``result.json`` and ``error.txt``; the predictions and attention scores in the trial's final
checkpoint), never Ray, so it works after a crash and on a copy of a sweep that ran
elsewhere, and nothing depends on when it runs: rebuilding gives the same rows.

Nothing half-written is trusted: a trial whose ``params.json`` does not parse, whose
``result.json`` holds a broken line before others, or whose final checkpoint did not arrive
whole (see
:func:`attnmel.checkpoint.final_problem`) is ``DAMAGED``, its ``error`` naming the file; its
checkpoint's predictions and Table 3 rows stay out, and every other trial is tabled as usual.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from attnmel.checkpoint import ATTENTION, FINAL, PREDICTIONS, final_checkpoint, final_problem, read_epochs, read_predictions
from attnmel.errors import UserError
from attnmel.metrics import (
    brier_score, expected_calibration_error, sensitivity_at_specificity, specificity_at_sensitivity,
)
from attnmel.record import IDENTITY_FIELDS, SPLIT_METRICS, external_metrics
from attnmel.selection import best_epoch_row
from orchestrator.layout import folders
from orchestrator.results import tables

__all__ = ["DAMAGED", "build_tables", "find_sweep_dirs", "load_tables", "terminated", "damaged_notes", "write_tables"]

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
DAMAGED = "DAMAGED"  # the status of a trial with a file cut short (see the module docstring)


# --------------------------------------------------------------------------- reading


def _read_results(path: Path) -> tuple[list[dict[str, Any]], int | None]:
    """Rows of ``result.json`` in file order, and the number of a line that does not parse
    although rows follow it (damage), else None. A last line cut short is what a crash in the
    middle of Tune's append leaves (or a live sweep shows): it is skipped, and the epoch comes
    back with the resume or from the final checkpoint's ``epochs.jsonl``. No file, or an empty
    one (a trial that started but never reported), is no rows."""
    if not path.exists():
        return [], None
    rows, bad, damaged = [], None, None
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s: line %d is not JSON (cut short by a crash or a full disk?); skipped", path, number)
            bad = bad or number
            continue
        damaged = damaged or bad
        if isinstance(row, dict):
            rows.append(row)
    return rows, damaged


def _read_params(trial_dir: Path) -> tuple[dict[str, Any], str | None]:
    """``params.json`` and, when it does not parse, what is wrong with it."""
    path = trial_dir / folders.PARAMS
    try:
        text = path.read_text()
    except OSError as exc:
        return {}, f"unreadable ({type(exc).__name__})"
    if not text.strip():
        return {}, "empty"
    try:
        params = json.loads(text)
    except json.JSONDecodeError:
        return {}, f"not JSON ({len(text.encode())} bytes; cut short?)"
    return (params, None) if isinstance(params, dict) else ({}, "not a JSON object")


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
    states = sorted(sweep_dir.glob(folders.EXPERIMENT_STATE))
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
    return folders.trial_id_of(trial_dir.name) or trial_dir.name


def _identity_from_params(params: dict[str, Any], trial_dir: Path) -> dict[str, Any]:
    """Identity of a trial that died before reporting anything, from its ``params.json``."""
    try:
        from attnmel.record import run_identity
        from orchestrator.layout.params import params_config

        return run_identity(params_config(params))
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


def _with_unreported_epochs(epochs: list[dict[str, Any]], final: Path | None, trial_dir: Path) -> list[dict[str, Any]]:
    """Add the epochs a finished run recorded but Tune never received.

    A node that dies after a checkpoint reached storage but before its result reached the
    driver loses that epoch's ``result.json`` row; the retry resumes after the checkpoint, so
    the epoch is not reported again. The run's own ``epochs.jsonl`` in its final checkpoint
    holds every epoch it trained.
    """
    if final is None:
        return epochs
    seen = {int(row["epoch"]) for row in epochs}
    missing = [row for row in read_epochs(final) if int(row["epoch"]) not in seen]
    if not missing:
        return epochs
    log.warning("%s: epoch(s) %s missing from result.json, taken from the run's epochs.jsonl",
                trial_dir, ", ".join(str(row["epoch"]) for row in missing))  # fmt: skip
    return sorted([*epochs, *missing], key=lambda row: int(row["epoch"]))


def _final_rows(sweep: str, trial_id: str, final: Path | None) -> tuple[list[dict], list[dict]]:
    """The trial's predictions and attention rows, from its final checkpoint (empty without one)."""
    if final is None or not (final / PREDICTIONS).exists():
        return [], []
    key = {"sweep": sweep, "trial_id": trial_id}
    predictions = [{**key, **row} for row in read_predictions(final / PREDICTIONS)]
    attention = [{**key, **row} for row in json.loads((final / ATTENTION).read_text())] if (final / ATTENTION).exists() else []
    return predictions, attention


def _operating_points(trial_dir: Path, predictions: list[dict[str, Any]]) -> dict[str, float | None]:
    """The trial's ``OPERATING_COLUMNS`` from its test predictions (None with fewer than 2 images of
    a class: no operating point means anything there). A NaN or out-of-range probability is a
    ``UserError`` naming the trial.

    Computed here rather than in ``fit``: the predictions are the record, so a rebuild gives the
    same numbers and sweeps that ran before these columns existed get them too."""
    test = [row for row in predictions if row["split"] == "test"]
    labels = [row["label"] for row in test]
    if min(labels.count(0), labels.count(1)) < 2:
        return dict.fromkeys(tables.OPERATING_COLUMNS)
    probs = [row["prob"] for row in test]
    brier, ece = tables.OPERATING_COLUMNS[-2:]
    try:
        values: dict[str, float | None] = {
            **{name: specificity_at_sensitivity(labels, probs, s) for name, s in tables.SPECIFICITY_COLUMNS.items()},
            **{name: sensitivity_at_specificity(labels, probs, s) for name, s in tables.SENSITIVITY_COLUMNS.items()},
            brier: brier_score(labels, probs),
            ece: expected_calibration_error(labels, probs),
        }
    except ValueError as error:
        raise UserError(f"{trial_dir}: test predictions: {error}") from None
    return values


def _best_metric(best: dict[str, Any] | None, last: dict[str, Any], name: str) -> Any:
    """A metric of the best epoch: its epoch row's, or, for test scored only at the end
    (``runtime.eval_test: best``: the epoch rows hold null), the finished trial's last result."""
    if best is None:
        return None
    if best.get(name) is None and last.get("done") and last.get("best_epoch") == best["epoch"]:
        return last.get(f"best_{name}")
    return best.get(name)


def _external_scores(final: Path | None, trial_dir: Path) -> dict[str, float]:
    """``ext_<name>_auc`` / ``_ap`` of each external set the finished run scored (its final.json)."""
    if final is None or not (final / FINAL).exists():
        return {}
    try:
        external = json.loads((final / FINAL).read_text()).get("external") or {}
        return {key: _float(e[m]) for name, e in external.items() for key, m in zip(external_metrics(name), ("auc", "ap"))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s: cannot read the external sets' scores from %s (%s)", trial_dir, final / FINAL, exc)
        return {}


def _trial_rows(
    sweep: str, trial_dir: Path, tune_statuses: dict[str, str], sweep_code_version: str | None
) -> dict[str, list[dict[str, Any]]]:
    """The rows of every table that one trial directory contributes."""
    rows, cut = _read_results(trial_dir / folders.RESULTS)
    params, params_problem = _read_params(trial_dir)
    final = final_checkpoint(trial_dir)
    final_damage = final_problem(final) if final is not None else None
    damage = next((f"damaged: {text}" for text in (
        params_problem and f"{folders.PARAMS} is {params_problem}",
        cut and f"{folders.RESULTS} line {cut} is not JSON",
        final_damage and f"{final.name}/{final_damage}",
    ) if text), None)  # fmt: skip
    if damage is not None:
        log.warning("%s: %s", trial_dir, damage)
    if final_damage is not None:
        final = None  # nothing of a checkpoint that did not arrive whole is read
    trial_id = _trial_id(trial_dir, rows)
    last = rows[-1] if rows else {}
    identity = {k: last.get(k) for k in IDENTITY_FIELDS}
    if any(value is None for value in identity.values()):  # died before its first result
        derived = _identity_from_params(params, trial_dir)
        if derived and sweep_code_version:
            # The code the sweep ran, not the code reading it now: rebuilds stay identical.
            derived["code_version"] = sweep_code_version
        identity = {k: derived.get(k) if v is None else v for k, v in identity.items()}

    epochs = _with_unreported_epochs(_dedupe_epochs(rows), final, trial_dir)
    best = best_epoch_row(epochs)
    reported = last.get("best_epoch")
    if best is not None and reported is not None and int(reported) != int(best["epoch"]):
        log.warning(
            "%s: best epoch recomputed from validation AUC is %s but the trial reported %s; using %s",
            trial_dir, best["epoch"], reported, best["epoch"],
        )  # fmt: skip

    if damage is None and final is not None and best is not None:
        recorded = json.loads((final / FINAL).read_text()).get("best_epoch")  # whole: final_problem said so
        if recorded is not None and int(recorded) != int(best["epoch"]):
            damage = (f"damaged: {folders.RESULTS} lacks epochs: the best is epoch {best['epoch']} there, "
                      f"{final.name}/{FINAL} records {recorded}")  # fmt: skip
            log.warning("%s: %s", trial_dir, damage)

    error, num_failures = _read_error(trial_dir / folders.ERRORS)
    tune_status = tune_statuses.get(trial_id)
    # A final checkpoint is written only by a run that ended, so a whole one counts too: Tune's copy
    # of result.json in the storage folder can lag behind (it syncs from the driver's staging folder).
    if damage is not None:
        status, error = DAMAGED, damage
    elif bool(last.get("done", False)) or final is not None:
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
        **{k: _best_metric(best, last, k) for k in SPLIT_METRICS},
        "epochs_run": len(epochs),
        "wall_seconds": wall,
        "reported_at": _float(last.get("reported_at", last.get("timestamp"))),  # Tune's: whole s
        "status": status,
        "tune_status": tune_status,
        "error": error,
        "num_failures": num_failures,
        "restarts": max(starts - 1, 0),
        # where it ran (Ray's node id tells apart nodes that share one host); older trials: null
        **{k: last.get(k) for k in tables.PLACEMENT_COLUMNS},
        "params": json.dumps(params, sort_keys=True, default=str),
        **_external_scores(final, trial_dir),
    }
    predictions, attention = _final_rows(sweep, trial_id, final)
    trial.update(_operating_points(trial_dir, predictions))
    return {
        "trials": [trial],
        "epochs": [{**row, "sweep": sweep, "trial_id": trial_id} for row in epochs],
        "predictions": predictions,
        "attention": attention,
    }


def _sweep_meta(sweep_dir: Path) -> dict[str, Any]:
    """``sweep.json`` (name, spec, code_version), or ``{}`` when absent or unreadable."""
    meta = sweep_dir / folders.SWEEP_META
    if not meta.exists():
        return {}
    try:
        data = json.loads(meta.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); using the directory name", meta, exc)
        return {}


def _arrow_tables(sweep_dir: Path) -> dict[str, pa.Table]:
    if not sweep_dir.is_dir():
        raise UserError(f"sweep directory {sweep_dir} does not exist")
    meta = _sweep_meta(sweep_dir)
    sweep = str(meta.get("name") or sweep_dir.name)
    statuses = _tune_statuses(sweep_dir)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in tables.SCHEMAS}
    for trial_dir in folders.trial_dirs(sweep_dir):
        for name, part in _trial_rows(sweep, trial_dir, statuses, meta.get("code_version")).items():
            rows[name] += part
    return {name: tables.to_arrow(name, part) for name, part in rows.items()}


def build_tables(sweep_dir: str | Path) -> tables.ResultTables:
    """Read a sweep's storage directory into its result tables (pandas frames)."""
    built = _arrow_tables(Path(sweep_dir))
    return tables.ResultTables(**{name: tables.frame(table) for name, table in built.items()})


def write_tables(sweep_dir: str | Path) -> tuple[dict[str, Path], tables.ResultTables]:
    """Build a sweep's tables and write them as Parquet beside it; returns the paths and the
    tables written. A sweep whose trials left no predictions (runs of an older version) gets
    no ``predictions``/``attention`` files, rather than empty ones."""
    sweep_dir = Path(sweep_dir)
    built = _arrow_tables(sweep_dir)
    if built["predictions"].num_rows == 0:
        built = {name: table for name, table in built.items() if name in ("trials", "epochs")}
    paths = tables.write(sweep_dir, built)
    frames = {name: tables.frame(table) if name in built else tables.empty(name) for name, table in
              ((n, built.get(n)) for n in tables.SCHEMAS)}  # fmt: skip
    return paths, tables.ResultTables(**frames)


# --------------------------------------------------------------------------- loading


def _is_sweep_dir(path: Path) -> bool:
    return (path / folders.SWEEP_META).exists() or (path / tables.FILES["trials"]).exists() or bool(folders.trial_dirs(path))


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


def _read_table(sweep_dir: Path, name: str) -> pd.DataFrame | None:
    """A sweep's Parquet table; one that does not read (cut short) is one line naming it."""
    try:
        return tables.read(sweep_dir, name)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{sweep_dir / tables.FILES[name]} is damaged ({reason}) and the trial folders it was built "
                        "from are not here to rebuild it") from None  # fmt: skip


def load_tables(path: str | Path) -> tables.ResultTables:
    """The tables of a sweep directory or of every sweep under a results root.

    Built fresh from the trial directories when they are there (so a running or crashed
    sweep shows its latest state), else read from the sweep's Parquet files.
    """
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in tables.SCHEMAS}
    for sweep_dir in find_sweep_dirs(path):
        if folders.trial_dirs(sweep_dir) or not (sweep_dir / tables.FILES["trials"]).exists():
            built = build_tables(sweep_dir)._asdict()
        else:
            built = {name: _read_table(sweep_dir, name) for name in tables.SCHEMAS}
        for name, table in built.items():
            parts[name].append(tables.empty(name) if table is None else table)
    return tables.ResultTables(
        **{name: pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0] for name, frames in parts.items()}
    )


def damaged_notes(trials: pd.DataFrame) -> list[str]:
    """One line per damaged trial: its folder and the file that did not arrive whole."""
    damaged = trials[trials["status"] == DAMAGED]
    return [f"{row.trial_dir}: {row.error}" for row in damaged.itertuples()]


def terminated(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The trials that ran to their last epoch, and how many others were left out by status."""
    done = trials["status"] == "TERMINATED"
    excluded = trials.loc[~done, "status"].value_counts().sort_index()
    return trials[done].reset_index(drop=True), {str(k): int(v) for k, v in excluded.items()}
