"""Where results live by default: the one results root that sweeps write under and ``query``,
``report`` and ``predict`` read."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["RESULTS_ENV", "results_root"]

RESULTS_ENV = "ATTNMEL_RESULTS"


def results_root(path: str | Path | None = None) -> Path:
    """The results root: ``path``, else ``$ATTNMEL_RESULTS``, else ``./results``."""
    return Path(path or os.environ.get(RESULTS_ENV) or "results").expanduser()
