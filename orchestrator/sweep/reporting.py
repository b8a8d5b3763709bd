"""What a sweep does with its folder besides running trials: the tables and summary at its end,
the figures, the page. The caller hands them in (the ``attnmel`` command wires
:mod:`orchestrator.results` in: :func:`orchestrator.cli.reporting.sweep_reporting`), so the sweep
runner never imports the results; a sweep run without them writes none of these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Reporting", "Tables", "PageWriter"]


@dataclass(frozen=True)
class Tables:
    """What the end of a run's reporting tells the runner: every trial's status in the tables,
    and the line of the storage failure that kept them from being written (None when written).
    ``tables`` and ``summary`` are the reporter's own, handed back to its figures and page so no
    number is computed twice."""

    statuses: tuple[str, ...]
    problem: str | None = None
    tables: Any = None
    summary: Any = None


class PageWriter(Protocol):
    """Writes the page of the sweep at ``sweep_dir`` and returns its path; ``live``: the sweep
    is running. Must pickle (Tune keeps it in its experiment state, inside the page callback)."""

    def __call__(self, sweep_dir: str | Path, *, live: bool, tables: Any = None, summary: Any = None) -> Path: ...


@dataclass(frozen=True)
class Reporting:
    """``tables(sweep_dir)``: write the tables, print where they are and the summary.
    ``figures(sweep_dir, tables)``: the figure files of ``sweep run --figures``.
    ``page``: the sweep's page, while it runs and at its end."""

    tables: Callable[[str], Tables]
    figures: Callable[[str, Tables], None]
    page: PageWriter
