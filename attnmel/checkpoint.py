"""What a run directory holds on disk, and the only code that reads or writes it.

A run directory (``attnmel train --out DIR``, or a sweep trial's scratch folder) holds:

``last.pt``       resumable state: model, optimiser and scheduler state, the epoch history
                  and the config; due every ``runtime.checkpoint_every`` epochs (written on a
                  background thread during the next epoch unless
                  ``runtime.background_checkpoint`` is off), dropped once the run has
                  finished (its final artefacts make it redundant). The previous one
                  survives as ``last.prev.pt`` until the new one is complete, so a damaged
                  file never costs more than one interval.
``best.pt``       the best validation epoch's weights, normalisation and config: all that
                  ``predict``, Table 3 and the figures need; no optimiser state. Kept in memory
                  as the run goes and written with each ``last.pt`` (before it, the previous
                  one kept as ``best.prev.pt``) and at the end.
``epochs.jsonl``  one JSON object per finished epoch (small; the tables read it).
``predictions.csv``, ``attention.json``, ``final.json``  written once, when the run ends;
                  ``final.json`` last, with the size of every final file in it, so a copy of
                  the folder (a sweep's checkpoint in storage) shows whether it arrived whole.

Every checkpoint is tensors and plain Python types only and is read with
``torch.load(weights_only=True)``: a file handed to us is data, never code.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from attnmel.atomic import atomic_output, atomic_write
from attnmel.errors import UserError
from attnmel.selection import best_epoch_row

__all__ = [
    "LAST",
    "PREVIOUS",
    "BEST",
    "EPOCHS_LOG",
    "PREDICTIONS",
    "ATTENTION",
    "FINAL",
    "DATA_INFO",
    "FORMAT",
    "save_checkpoint",
    "write_checkpoint",
    "previous_of",
    "host_copy",
    "BackgroundWriter",
    "load_checkpoint",
    "load_resume_state",
    "read_epochs",
    "write_epochs",
    "write_predictions",
    "read_predictions",
    "read_summary",
    "read_data_info",
    "is_finished",
    "final_checkpoint",
    "write_final",
    "final_problem",
    "resume_problem",
]

LAST, PREVIOUS, BEST = "last.pt", "last.prev.pt", "best.pt"
EPOCHS_LOG, PREDICTIONS, ATTENTION, FINAL = "epochs.jsonl", "predictions.csv", "attention.json", "final.json"
DATA_INFO = "data_info.json"  # the data a run saw: counts per split, normalisation, cache keys
FORMAT = "attnmel-checkpoint/3"  # bumped when the payload's keys change meaning
# /2: VGG-16-BN's convolutions still had biases. Its weights load (attnmel.models.backbone folds
# the biases into batch norm); its optimiser state has a momentum buffer per bias, so no resume.
_MODEL_ONLY_FORMATS = ("attnmel-checkpoint/2",)
FINAL_FILES = (BEST, PREDICTIONS, ATTENTION, EPOCHS_LOG)  # sized in final.json
_PREDICTION_COLUMNS = ["split", "image_id", "label", "prob", "dataset"]  # files of older versions lack "dataset"


def save_checkpoint(payload: dict[str, Any], path: Path, *, keep_previous: bool = False) -> None:
    """``torch.save`` ``payload`` to ``path`` atomically.

    With ``keep_previous`` the file being replaced stays as ``last.prev.pt`` (a hard link, so
    no copy of a checkpoint that can be 1 GB) until the next save, so a ``path`` damaged later
    (a crash while copying it, a full disk) still leaves the state before it. The link is made
    first: the older previous state gives its space back before the new one takes any, so a
    directory never holds more than two states of a file (and a write that fails for want of
    space leaves ``path`` and its previous the same intact file).
    """
    import torch  # here, not at the top: the result commands read run folders without torch

    if keep_previous and path.exists():
        _link_or_copy(path, previous_of(path))
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:  # a file object: a short write surfaces as ENOSPC, not "unexpected pos"
            torch.save({"format": FORMAT, **payload}, handle)


def host_copy(obj: Any, into: Any = None) -> Any:
    """``obj`` with every tensor copied into host memory (dicts, lists and tuples rebuilt), so a
    background write sees the state of this moment while training goes on changing it.

    ``into``, an earlier copy of the same structure no one reads any more, lends its tensors of
    matching shape and dtype as the destinations: copying into memory already touched is an
    order of magnitude faster than into fresh pages (1 GB: 0.06 s against 1.7 s here).
    """
    import torch  # cheap after the first call (sys.modules); see save_checkpoint

    if isinstance(obj, torch.Tensor):
        if isinstance(into, torch.Tensor) and into.shape == obj.shape and into.dtype == obj.dtype:
            return into.copy_(obj.detach())
        if obj.is_cuda:  # page-locked: device-to-host copies run at full bus speed
            return torch.empty(obj.shape, dtype=obj.dtype, pin_memory=True).copy_(obj.detach())
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        earlier = into if isinstance(into, dict) else {}
        return {k: host_copy(v, earlier.get(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        earlier = into if isinstance(into, (list, tuple)) and len(into) == len(obj) else [None] * len(obj)
        return type(obj)(host_copy(v, e) for v, e in zip(obj, earlier))
    return obj


class BackgroundWriter:
    """Runs checkpoint writes one at a time on a background thread.

    The training thread pays for copying the state into host memory (``host_state``) and,
    only when the previous write has not finished by then, for waiting on it; ``torch.save``
    and the file system work overlap the next epoch. A failed write is raised by the next
    ``wait`` (or ``submit``) in the training thread.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attnmel-checkpoint")
        self._pending: Future | None = None
        self._copy: Any = None  # the last host copy; its buffers are reused once its write ended

    def host_state(self, state: Any) -> Any:
        """``host_copy`` of ``state`` into the buffers of the previous copy (after waiting for
        the write that used them): the state stays in host memory between checkpoints, in
        exchange for copies as fast as a memcpy."""
        self.wait()
        self._copy = host_copy(state, into=self._copy)
        return self._copy

    def submit(self, write: Callable[..., None], *args: Any) -> None:
        """Start ``write(*args)`` once the previous write has ended."""
        self.wait()
        self._pending = self._pool.submit(write, *args)

    def wait(self) -> bool:
        """Block until the pending write has ended; True when one was pending. Re-raises its error."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        pending.result()
        return True

    def close(self) -> None:
        """Let the pending write finish (its error, if any, is left to the caller's own), then stop."""
        try:
            if self._pending is not None:
                self._pending.exception()
        finally:
            self._pending, self._copy = None, None
            self._pool.shutdown(wait=True)


def write_checkpoint(run_dir: Path, best: dict[str, Any] | None, resume: dict[str, Any]) -> None:
    """``best.pt`` (when it changed: ``best`` not None), then ``last.pt``, each keeping the file
    it replaces as ``*.prev.pt``: a resume always finds its best epoch."""
    if best is not None:
        save_checkpoint(best, run_dir / BEST, keep_previous=True)
    save_checkpoint(resume, run_dir / LAST, keep_previous=True)


def previous_of(path: Path) -> Path:
    """Where ``save_checkpoint(..., keep_previous=True)`` keeps the file it replaced."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (atomically; a copy where links fail)."""
    with atomic_output(target) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(source, tmp)


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint of this project, as data only (``weights_only=True``).

    ``kind`` ("resume" or "model") is checked when given. A file that is missing, damaged,
    not a checkpoint, or one that would need code to load is a ``UserError`` naming it.
    """
    from attnmel.tensor_file import read_tensors  # torch: only where a checkpoint is loaded

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    payload = read_tensors(path, "an AttnMel checkpoint")
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found not in (FORMAT, *_MODEL_ONLY_FORMATS):
        raise UserError(f"{path} is not an AttnMel checkpoint of format {FORMAT} (found {found!r})")
    if kind is not None and payload.get("kind") != kind:
        raise UserError(f"{path} is a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    if found != FORMAT and payload.get("kind") != "model":
        raise UserError(f"{path} was written by an older version ({found}: convolutions before batch norm still had "
                        "biases), so its optimiser state cannot resume here; delete it to start the run over")
    return payload


def load_resume_state(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The newest readable resumable state of ``run_dir`` and a warning when one was damaged.

    ``last.pt`` first, then ``last.prev.pt``; ``(None, None)`` for a fresh directory. When
    ``last.pt`` is damaged and no previous state exists, the ``UserError`` names the file.
    """
    last, previous = run_dir / LAST, run_dir / PREVIOUS
    if not last.exists() and not previous.exists():
        return None, None
    try:
        return load_checkpoint(last, kind="resume"), None
    except UserError as damaged:
        if not previous.exists():
            raise UserError(f"{damaged}; delete it to start the run over") from None
        state = load_checkpoint(previous, kind="resume")
        return state, f"{damaged}; resuming from {previous.name} (epoch {state['epoch']})"


def read_epochs(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``epochs.jsonl`` (empty when absent); a line cut short by a crash is skipped."""
    log = run_dir / EPOCHS_LOG
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_epochs(run_dir: Path, history: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite ``epochs.jsonl`` with ``history`` (one JSON object per line)."""
    atomic_write(run_dir / EPOCHS_LOG, "".join(json.dumps(dict(row)) + "\n" for row in history))


def write_predictions(run_dir: Path, rows: Iterable[tuple]) -> None:
    """``predictions.csv``: split, image_id, label, prob (17 significant digits: exact floats),
    dataset (the one the image belongs to: the run's own for val/test, another's for the rows
    of an external set). A row is (split, image_id, label, prob[, dataset])."""
    lines = [",".join(_PREDICTION_COLUMNS)]
    for split, image_id, label, prob, *dataset in rows:
        lines.append(f"{split},{image_id},{int(label)},{float(prob)!r},{dataset[0] if dataset else ''}")
    atomic_write(run_dir / PREDICTIONS, "\n".join(lines) + "\n")


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``predictions.csv`` as dicts with typed values (``dataset`` None in files of
    older versions, which had no such column); a file that does not parse (cut short, wrong
    columns) is a ``UserError`` naming it and the line."""
    rows = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames not in (_PREDICTION_COLUMNS, _PREDICTION_COLUMNS[:4]):
            raise UserError(f"{path.name} is empty or has other columns than {','.join(_PREDICTION_COLUMNS)}")
        for r in reader:
            try:
                rows.append({"split": r["split"], "image_id": r["image_id"], "label": int(r["label"]),
                             "prob": float(r["prob"]), "dataset": r.get("dataset") or None})  # fmt: skip
            except (TypeError, ValueError):
                raise UserError(f"{path.name}: line {reader.line_num} does not parse (cut short?)") from None
    return rows


def is_finished(run_dir: Path) -> bool:
    """Whether the run ended and wrote its final artefacts (``final.json``)."""
    return (run_dir / FINAL).exists()


def final_checkpoint(trial_dir: str | Path) -> Path | None:
    """A sweep trial's newest Tune checkpoint folder (``checkpoint_NNNNNN``) holding a finished
    run (``final.json``), or None. Whether it arrived whole is :func:`final_problem`'s to say."""
    finished = [p.parent for p in Path(trial_dir).glob(f"checkpoint_*/{FINAL}")]
    return max(finished, key=lambda p: p.name) if finished else None


def write_final(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """``final.json``, the run's completion marker: ``summary`` and the size of each final file,
    written last so that a folder holding it whole holds every final file whole."""
    files = {name: (run_dir / name).stat().st_size for name in FINAL_FILES if (run_dir / name).exists()}
    atomic_write(run_dir / FINAL, json.dumps({**summary, "files": files}, indent=1))


def _read_json(path: Path) -> tuple[Any, str | None]:
    """(the parsed file, None) or (None, what is wrong with it)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if not text.strip():
        return None, "empty"
    try:
        return json.loads(text), None
    except json.JSONDecodeError:
        return None, f"not JSON ({len(text.encode())} bytes; cut short?)"


def _torch_file_problem(path: Path) -> str | None:
    """A checkpoint's zip container is whole when its end record is there: a cut anywhere loses it."""
    if not path.exists():
        return "missing"
    if path.stat().st_size == 0:
        return "empty"
    return None if zipfile.is_zipfile(path) else f"not a whole checkpoint ({path.stat().st_size:,} bytes; cut short?)"


def final_problem(folder: str | Path) -> str | None:
    """What is wrong with a finished run's folder (a run directory or a copy of it), or None.

    The answer names the file: ``final.json`` missing or not whole, a final file missing or of
    another size than ``final.json`` records, ``attention.json`` or ``predictions.csv`` that do
    not parse, ``best.pt`` not a whole checkpoint. Reads no tensors: cheap enough for every
    trial of a sweep. Folders of older versions (no sizes in ``final.json``) get the parse checks.
    """
    folder = Path(folder)
    final, problem = _read_json(folder / FINAL)
    if problem is None and not isinstance(final, dict):
        problem = "not a JSON object"
    if problem is not None:
        return f"{FINAL} is {problem}"
    files = final.get("files") or {}
    if not isinstance(files, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in files.values()):
        return f"{FINAL} is not this project's (its 'files' are not sizes)"
    for name, size in files.items():
        if name not in FINAL_FILES:  # a file handed to us is data: it names no other path
            continue
        path = folder / name
        if not path.exists():
            return f"{name} is missing ({FINAL} lists {size:,} bytes)"
        if path.stat().st_size != size:
            return f"{name} is {path.stat().st_size:,} bytes, {FINAL} lists {size:,} (cut short?)"
    if (folder / ATTENTION).exists():
        rows, problem = _read_json(folder / ATTENTION)
        if problem is None and not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
            problem = "not a list of rows"
        if problem is not None:
            return f"{ATTENTION} is {problem}"
    if (folder / PREDICTIONS).exists():
        try:
            read_predictions(folder / PREDICTIONS)
        except UserError as exc:
            return str(exc)
    if (folder / BEST).exists():
        problem = _torch_file_problem(folder / BEST)
        if problem is not None:
            return f"{BEST} is {problem}"
    return None


def resume_problem(folder: str | Path) -> str | None:
    """What is wrong with a folder as a resumable state (``last.pt``, its ``best.pt``,
    ``epochs.jsonl``), or None; like :func:`final_problem`, reads no tensors."""
    folder = Path(folder)
    for name in (LAST, BEST):
        if name == BEST and not (folder / BEST).exists():
            continue  # a run whose best epoch was still only in memory
        problem = _torch_file_problem(folder / name)
        if problem is not None:
            return f"{name} is {problem}"
    return None


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """Best-epoch summary of a run directory from its small ``epochs.jsonl`` and, once it has
    finished, ``final.json`` (which holds the test metrics when test was scored only at the end,
    ``runtime.eval_test: best``); no checkpoint read."""
    run_dir = Path(run_dir)
    history = read_epochs(run_dir)
    best = best_epoch_row(history)
    if best is None:
        raise UserError(f"no finished epoch in {run_dir} (expected {run_dir / EPOCHS_LOG})")
    done = is_finished(run_dir)
    final = json.loads((run_dir / FINAL).read_text()) if done else {}
    return {
        "best_epoch": best["epoch"],
        **{k: best.get(k) if best.get(k) is not None else final.get(k) for k in ("val_auc", "val_ap", "test_auc", "test_ap")},
        "epochs": len(history),
        "done": done,
    }


def read_data_info(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``data_info.json`` (counts per split, normalisation, cache keys), or None when
    it is missing or unreadable (a report then says the counts are unknown)."""
    try:
        info = json.loads((Path(run_dir) / DATA_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
