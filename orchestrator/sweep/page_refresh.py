"""The sweep's page (``report.html`` in its folder) kept current while the sweep runs.

:class:`PageRefresh`, a Tune callback, rewrites the page after each trial that ends, on a
thread of its own so Tune's loop never waits for it; requests that arrive while a page is being
written fold into one more write. The sweep's end writes the last page (no reload) with
:func:`write_final_page`. A page that cannot be written costs one printed line, never the sweep.
Both write with the :class:`~orchestrator.sweep.reporting.PageWriter` the caller handed in.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from ray import tune

from orchestrator.layout import folders
from orchestrator.sweep import storage
from orchestrator.sweep.reporting import PageWriter

__all__ = ["PageRefresh", "refresh_page", "write_final_page"]

# Tune copies a trial's result.json and params.json from the driver's staging folder into the
# storage folder at its next experiment checkpoint, seconds after the trial ended; the page waits
# (at most this long) until storage shows the ended trial, so it does not show the state before.
_SYNC_WAIT_S = 30.0


def _shows_end(trial_dir: Path) -> bool:
    """Whether the storage copy of a trial folder already records its end (a last result with
    ``done``, or Tune's error file)."""
    if (trial_dir / folders.ERRORS).exists():
        return True
    try:
        lines = (trial_dir / folders.RESULTS).read_text().splitlines()
        return bool(lines) and bool(json.loads(lines[-1]).get("done"))
    except (OSError, ValueError, AttributeError):
        return False


def refresh_page(sweep_dir: str | Path, write: PageWriter, *, live: bool, tables: Any = None,
                 summary: Any = None) -> Path | None:
    """Write the sweep's page with ``write``; on any failure print one line and return None."""
    try:
        return write(sweep_dir, live=live, tables=tables, summary=summary)
    except Exception as exc:  # the page is a view of the sweep: it must never end it
        print(f"page {Path(sweep_dir) / folders.PAGE}: not written ({type(exc).__name__}: {exc})", flush=True)
        return None


def write_final_page(sweep_dir: str, write: PageWriter, tables: Any, summary: Any) -> None:
    """The page of a sweep that has ended, from the tables just written and the summary just
    printed (local storage only)."""
    if storage.is_uri(sweep_dir):
        return
    written = refresh_page(sweep_dir, write, live=False, tables=tables, summary=summary)
    if written is not None:
        print(f"page: {written}", flush=True)


class PageRefresh(tune.Callback):
    """Writes the running sweep's page when its first trial starts and after each trial that
    ends (finished or errored).

    Pickled into Tune's experiment state with the run config, so a resumed sweep refreshes its
    page too; the thread is made anew after unpickling.
    """

    def __init__(self, sweep_dir: str, write: PageWriter) -> None:
        self.enabled = not storage.is_uri(sweep_dir)  # the page is written next to local storage only
        self.write = write
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._wanted = threading.Event()  # the thread's cue: write a page
        self._pending = False  # a trial started or ended during this step of Tune's loop
        self._closing = False
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        self._ended: list[Path] = []  # storage folders of trials that ended since the last page

    def __getstate__(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "write": self.write}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a state pickled by an older version has no writer: it writes no page while running
        self.write = state.get("write")
        self.enabled = state["enabled"] and self.write is not None
        self._init_runtime()

    def _request(self, trial: Any, *, ended: bool = False) -> None:
        """Ask for a page at the end of this step of Tune's loop; for a trial that ended, once
        the storage copy of its folder shows the end."""
        if self.enabled and not self._closing:
            # Where the experiment is now (a resumed sweep may have been moved since it started).
            self._dir = Path(trial.remote_experiment_path)
            self._pending = True
            if ended:
                self._ended.append(Path(trial.path))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._pending or self._closing:
            return
        self._pending = False
        self._wanted.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="attnmel-page", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._closing:
                return
            self._wanted.clear()
            ended, self._ended = self._ended, []
            deadline = time.monotonic() + _SYNC_WAIT_S
            while not self._closing and time.monotonic() < deadline and not all(_shows_end(d) for d in ended):
                time.sleep(0.25)
            if self._closing:
                return
            refresh_page(self._dir, self.write, live=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._thread is None and not self._pending:  # the first page: the spec, "0 of N trials done"
            self._request(trial)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._request(trial, ended=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._request(trial, ended=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Stop refreshing (waiting for a write in progress): the sweep's end writes the last page."""
        self._closing = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()
