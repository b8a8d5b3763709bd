"""A full or read-only storage while a sweep runs: one line per trial, no new trials, a way on.

Every trial after the first that hits a full (or read-only) storage would hit the same wall, so
the first such failure ends the sweep: the progress callback raises :class:`StorageWall`, which
ends Tune's run loop (Tune stops the running trials; the experiment state it last saved keeps
them, and the pending ones, unfinished), and ``sweep resume`` continues them once space is
freed. Tune is not asked to save its state once more at the end: on a full disk that write is
what cuts the state file short.

A failure is a storage failure when the trial's error (Tune's ``error.txt`` on the driver)
ends in a :class:`~attnmel.errors.StorageError` (the trainable turns every full-disk or
read-only write into one) or, when Tune could not even write that file, when the sweep's
storage itself is read-only or nearly full. What this process saw is kept in
:data:`FAILURES`: Tune runs a copy of the progress callback unpickled from the experiment
state, so the driver cannot ask the callback object it built.

Tune's own records of such failures (a traceback per trial, another per failed state save or
sync, Ray's "Unhandled error" of a trial stopped while failing) are turned into one line or
dropped by :class:`TuneLogFilter`; its record that it could not restore a saved state, which
would make it start the experiment over, is noted so the resume can refuse instead.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from attnmel.atomic import free_bytes, storage_error
from attnmel.errors import StorageError, UserError

__all__ = ["FAILURES", "StorageWall", "TuneLogFilter", "failure_line", "stop_sweep", "restore_failed", "watched_fit"]

FAILURES: list[str] = []  # storage failures this process's sweep saw, one line each

_STORAGE_LINE = re.compile(r"StorageError: (.+)$")
_NEARLY_FULL = 16 << 20  # storage this close to full explains a failure whose error file is empty
# The Ray modules whose log records a storage failure repeats (logging names, not imports);
# the last one reports the error of a trial stopped before Tune fetched it ("Unhandled error")
_RAY_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.execution.experiment_state", "ray.tune.tune",
                "ray.train._internal.syncer", "ray._private.worker")  # fmt: skip
# a traceback logged as text (the syncer's "Last sync command failed") ending in a storage errno
_STORAGE_ERRNO_LINE = re.compile(r"\[Errno (28|30|122)\]")
_REASONS = {"28": "no space left on device", "30": "read-only file system", "122": "disk quota exceeded"}


def _last_failure(error_file: str | None) -> list[str]:
    """The lines of the last failure block Tune appended to a trial's ``error.txt``."""
    if not error_file:
        return []
    try:
        lines = Path(error_file).read_text(errors="replace").splitlines()
    except OSError:
        return []
    starts = [i for i, line in enumerate(lines) if line.startswith("Failure #")]
    return [line.strip() for line in lines[starts[-1] if starts else 0 :] if line.strip()]


def failure_line(trial: Any, sweep_dir: str | None) -> str | None:
    """The one line saying why ``trial`` failed, when its storage (or scratch disk) is full or
    read-only; None for any other failure."""
    for line in reversed(_last_failure(getattr(trial, "error_file", None))):
        match = _STORAGE_LINE.search(line)
        if match:
            return match.group(1)
        if "Failure #" not in line:  # the exception's own line came last; it is not ours
            break
    if not sweep_dir or "://" in sweep_dir:
        return None
    from orchestrator.sweep.storage import writable_problem

    problem, free = writable_problem(sweep_dir), free_bytes(sweep_dir)
    if problem is None and free is not None and free < _NEARLY_FULL:
        problem = "no space left on device"
    return None if problem is None else str(StorageError(sweep_dir, problem, free))


class StorageWall(Exception):
    """Ends Tune's run loop at the first storage failure (raised from its callbacks)."""


def stop_sweep(line: str, *, now: bool = True) -> None:
    """Record ``line`` and, the first time and when ``now``, end the run (:class:`StorageWall`):
    no trial starts after this, the running ones are stopped. Not ``now`` (a log record, which
    may come from one of Tune's threads): the next trial to fail ends it."""
    first = not FAILURES
    FAILURES.append(line)
    if first and now:
        raise StorageWall(line)


class TuneLogFilter(logging.Filter):
    """Keeps Tune's log to one line per storage failure (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.restore_failed: str | None = None  # why Tune could not read a saved state
        self._state_save_told = False

    def reset(self) -> None:
        self.restore_failed, self._state_save_told = None, False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        if message.startswith("Failed to restore the run state"):
            self.restore_failed = f"{type(error).__name__}: {error}".splitlines()[0][:200] if error else "unknown"
            return False
        if message.startswith("Restarting experiment"):
            return not self.restore_failed  # ours to explain
        if message.startswith("Unhandled error") and _STORAGE_LINE.search(message.strip().splitlines()[-1]):
            return False  # a trial the stop caught failing on the same wall
        if error is not None:
            problem = storage_error(error, "")
            reason = problem.reason if problem is not None else None
        else:
            match = _STORAGE_ERRNO_LINE.search(message.strip().splitlines()[-1]) if message.strip() else None
            reason = _REASONS[match.group(1)] if match else None
        if reason is None:
            return True
        if message.startswith("Trial task failed"):
            return False  # the progress line of the trial says it
        if self._state_save_told:
            return False
        self._state_save_told = True
        line = f"Tune could not save its experiment state into storage: {reason}"
        stop_sweep(line, now=False)  # the trials' next checkpoints fail the same way and end the run
        record.msg, record.args = line, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.levelno, record.levelname = logging.ERROR, "ERROR"
        return True


_FILTER = TuneLogFilter()


def restore_failed() -> str | None:
    """Why Tune, in the current ``watched_fit``, could not restore the saved state; else None."""
    return _FILTER.restore_failed


def watched_fit(tuner: Any, sweep_dir: str) -> Any:
    """``tuner.fit()`` with the storage watch on. Returns its results, or None when a storage
    failure stopped the sweep and Tune could not hand its results over (it reads the error
    files it failed to write). A saved state Tune could not restore is a ``UserError``."""
    FAILURES.clear()
    _FILTER.reset()
    for name in _RAY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    try:
        results = tuner.fit()
    except Exception as exc:
        if _FILTER.restore_failed is not None:
            raise _restore_refused(sweep_dir) from None
        problem = storage_error(exc, sweep_dir)
        if not FAILURES and problem is None:
            raise
        if problem is not None and not FAILURES:
            FAILURES.append(str(problem))
        return None
    if _FILTER.restore_failed is not None:
        raise _restore_refused(sweep_dir)
    return results


def _restore_refused(sweep_dir: str) -> UserError:
    return UserError(f"Tune could not restore the experiment state in {sweep_dir} ({_FILTER.restore_failed}) and "
                     f"would have started the sweep over; `attnmel sweep resume --from-trials {sweep_dir}` rebuilds "
                     "the trial list from sweep.json and the trial folders")  # fmt: skip
