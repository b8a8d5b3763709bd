"""What the ``attnmel`` command hands the sweep runner (:mod:`orchestrator.sweep.reporting`):
the result tables, summary, figures and page of :mod:`orchestrator.results`, and the page's
reading of a sweep's spec from :mod:`orchestrator.sweep.spec`. The one place the two meet."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.sweep.reporting import Reporting, Tables

__all__ = ["read_spec", "sweep_reporting", "write_sweep_page", "write_sweep_tables", "write_sweep_figures"]


def read_spec(stored: Mapping[str, Any]) -> Any:
    """sweep.json's spec → the :class:`~orchestrator.sweep.spec.SweepSpec` the page describes."""
    from orchestrator.sweep.spec import spec_from_dict

    return spec_from_dict(stored)


@contextlib.contextmanager
def _quiet_build() -> Iterator[None]:
    """A running sweep's folder has gaps Tune fills later (result.json syncs from the driver's
    staging folder; a trial may be mid-write): reading it then is no cause for warnings."""
    build_log = logging.getLogger("orchestrator.results.build")
    level = build_log.level
    build_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        build_log.setLevel(level)


def write_sweep_page(sweep_dir: str | Path, *, live: bool, tables: Any = None, summary: Any = None) -> Path:
    """The sweep's page (``report.html`` in its folder), while it runs (``live``) or at its end."""
    from orchestrator.results.html import write_page

    with _quiet_build() if live else contextlib.nullcontext():
        return write_page(sweep_dir, read_spec=read_spec, live=live, tables=tables, summary=summary)


def write_sweep_tables(sweep_dir: str) -> Tables:
    """Write the sweep's tables and print where they are and the summary (computed once: the
    page shows it too); a full or read-only storage leaves them unwritten, its line returned."""
    from attnmel.errors import StorageError
    from orchestrator.results.build import build_tables, write_tables
    from orchestrator.results.summary import summary_model, summary_report

    problem = None
    try:
        paths, built = write_tables(sweep_dir)
        print(f"tables: {', '.join(str(p) for p in paths.values())}")
    except StorageError as exc:  # the summary is still worth printing
        built = build_tables(sweep_dir)
        print(f"tables: not written ({exc})")
        problem = str(exc)
    summary = summary_model(built)
    text, note = summary_report(built, model=summary)
    print(text + (note or ""))
    print(_claims_text(built))
    return Tables(tuple(str(s) for s in built.trials["status"]), problem, built, summary)


def _claims_text(built: Any) -> str:
    """The paper's claims answered by the sweep (``report claims``), or why not, as text."""
    from orchestrator.results.claims import evaluate_claims
    from orchestrator.results.claims_table import claims_tables
    from orchestrator.results.formats import render

    try:
        return render(*claims_tables(evaluate_claims(built)), "text")
    except ValueError as exc:
        return f"claims: not evaluated ({exc})\n"


def write_sweep_figures(sweep_dir: str, written: Tables) -> None:
    """The curves and sensitivity PNGs of ``sweep run --figures``."""
    from orchestrator.results.summary import write_figures

    write_figures(sweep_dir, written.tables)


def sweep_reporting() -> Reporting:
    """The reporting every ``attnmel sweep`` run and resume gets."""
    return Reporting(tables=write_sweep_tables, figures=write_sweep_figures, page=write_sweep_page)
