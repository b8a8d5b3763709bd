"""Asking a running sweep to stop before its end, cleanly: the signal, the exit code, and the
driver's memory of the request. Stated once for the driver (:mod:`orchestrator.sweep.tune`) and
for the launchers that ask (the Slurm job script of :mod:`orchestrator.sweep.slurm`).

The request is ``SIGUSR1`` to the driver process. While Tune's ``fit`` runs, Tune's own
handler for it ends the run as Ctrl+C does: trials stop at their last checkpoints and the
experiment state is saved, so ``attnmel sweep resume`` continues where they were. What Tune
does not keep is whether it happened, and before ``fit`` installs its handler the signal's
default action would kill the driver. :func:`listen` covers both: its handler records the
request and passes it on to the handler it replaced. The driver calls it when it starts (a
request during preflight is kept, and ``fit`` is then not started) and again once Tune has
installed its own handler (from ``SweepProgress.setup``, which Tune calls after that).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["STOP_SIGNAL", "EXIT_STOPPED", "listen", "requested"]

STOP_SIGNAL = signal.SIGUSR1
EXIT_STOPPED = 3  # a sweep that stopped on request before its end; `sweep resume` continues it

_requested = threading.Event()  # per process: once asked, a driver starts no further fit


def requested() -> bool:
    """Whether this process has been asked to stop."""
    return _requested.is_set()


def listen() -> None:
    """From now on, record :data:`STOP_SIGNAL` and pass it on to the handler installed before
    (unless that was the default action, which kills). Signals reach the main thread only, so
    elsewhere this does nothing; calling it again over its own handler changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(STOP_SIGNAL)
    if getattr(previous, "records_stop", False):
        return

    def record(signum: int, frame: Any) -> None:
        _requested.set()
        if callable(previous):
            previous(signum, frame)

    record.records_stop = True  # type: ignore[attr-defined]
    signal.signal(STOP_SIGNAL, record)
