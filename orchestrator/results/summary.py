"""What a sweep prints and draws when it ends: the paper-style table with the seed ensembles'
confidence intervals, and the curves and sensitivity figures in the sweep folder."""

from __future__ import annotations

from pathlib import Path

from attnmel.errors import UserError
from orchestrator.results.tables import ResultTables

__all__ = ["sweep_summary", "write_figures"]


def sweep_summary(built: ResultTables) -> str:
    """The paper-style table, with the seed ensembles' bootstrap intervals when there are predictions."""
    from orchestrator.results.paper import add_intervals, format_summary, summarize
    from orchestrator.results.comparisons import variant_intervals

    summary, excluded = summarize(built.trials)
    if not built.predictions.empty and not summary.empty:
        try:
            per_setting, _ = variant_intervals(built.trials, built.predictions, n_resamples=1000, per_trial=False)
            summary = add_intervals(summary, per_setting)
        except ValueError as exc:  # e.g. a test split with one class: the table without intervals
            print(f"no confidence intervals: {exc}")
    return format_summary(summary, excluded)


def write_figures(sweep_dir: str | Path, built: ResultTables) -> None:
    """``curves.png`` and, for a sweep with a λ grid, ``sensitivity.png`` in the sweep folder."""
    from orchestrator.results.plots import plot_curves, plot_sensitivity, save_figure

    regularised = built.trials[built.trials["roi"] != "none"]
    figures = {"curves.png": lambda: plot_curves(built.trials, built.epochs)}
    if regularised[["lambda1", "lambda2"]].drop_duplicates().shape[0] > 1:
        figures["sensitivity.png"] = lambda: plot_sensitivity(built.trials)
    for name, draw in figures.items():
        try:
            print(f"figure: {save_figure(draw(), Path(sweep_dir) / name)}")
        except UserError as exc:
            print(f"figure {name}: {exc}")
