"""A trial's status: what the result tables' ``status`` column holds (these strings, so the
Parquet column and every query keep them), what the sweep runner counts and the page shows.
``TERMINATED`` and ``ERROR`` are also Tune's own names for a trial that finished or failed, as
its callbacks and its saved experiment state give them."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ENDED", "TrialStatus"]


class TrialStatus(StrEnum):
    """The statuses of :mod:`orchestrator.results.build` (its docstring says when each is given)."""

    TERMINATED = "TERMINATED"  # ran to its last epoch (or has a whole final checkpoint)
    ERROR = "ERROR"  # failed for good (error.txt, or Tune says so)
    STOPPED = "STOPPED"  # ended by Tune (a scheduler such as ASHA) before its last epoch
    INCOMPLETE = "INCOMPLETE"  # still running, or stopped with the driver
    DAMAGED = "DAMAGED"  # a file of the trial did not arrive whole


# statuses a trial keeps for good; an INCOMPLETE one may still run
ENDED = (TrialStatus.TERMINATED, TrialStatus.ERROR, TrialStatus.STOPPED)
