"""The paper-style report of a sweep's tables, as ``sweep run`` prints it at its end and
``report show`` prints it on demand (one pipeline, one default resample count), and the curves
and sensitivity figures a sweep writes into its folder."""

from __future__ import annotations

from pathlib import Path

from attnmel.errors import UserError
from orchestrator.results.stats import DEFAULT_RESAMPLES
from orchestrator.results.tables import ResultTables

__all__ = ["summary_report", "write_figures"]

NO_PREDICTIONS = ("confidence intervals need per-image predictions, which these trials (of an older version) "
                  "did not store: re-run them to get CIs")  # fmt: skip


def summary_report(
    tables: ResultTables, *, paper: bool = False, intervals: bool = True, per_trial: bool = False,
    ensemble: bool = False, n_resamples: int = DEFAULT_RESAMPLES,
) -> tuple[str, str | None]:  # fmt: skip
    """The paper-style table per dataset, with each setting's interval over seeds and test
    images where the trials stored predictions (with ``per_trial`` each trial's own, with
    ``ensemble`` each setting's seed ensemble in a table of its own). Returns ``(text, problem)``:
    ``problem`` says why the intervals are missing when they could not be computed (e.g. a test
    split with one class), else None."""
    from orchestrator.results.comparisons import setting_intervals
    from orchestrator.results.paper import add_intervals, summarize
    from orchestrator.results.text import format_summary, format_trial_intervals

    summary, excluded = summarize(tables.trials)
    if not intervals or summary.empty:
        return format_summary(summary, excluded, paper=paper), None
    if tables.predictions.empty:
        return format_summary(summary, excluded, paper=paper) + NO_PREDICTIONS + "\n", None
    try:
        per_setting, trial_rows = setting_intervals(tables.trials, tables.predictions, n_resamples=n_resamples,
                                                    per_trial=per_trial, ensemble=ensemble)  # fmt: skip
    except ValueError as error:
        return format_summary(summary, excluded, paper=paper), f"no confidence intervals: {error}"
    summary = add_intervals(summary, per_setting)
    text = format_summary(summary, excluded, paper=paper)
    if per_trial:
        text += "\n" + format_trial_intervals(trial_rows, summary, paper=paper)
    return text, None


def write_figures(sweep_dir: str | Path, built: ResultTables) -> None:
    """``curves.png`` and, for a sweep with a λ grid, ``sensitivity.png`` (cells that survive
    BH q < 0.05 against AttnMel-CNN marked) in the sweep folder."""
    from orchestrator.results.comparisons import sensitivity_family
    from orchestrator.results.plots import plot_curves, plot_sensitivity, save_figure

    def sensitivity():
        try:
            significance = sensitivity_family(built.trials, built.predictions)
        except ValueError as error:
            raise UserError(f"cannot mark the cells: {error}") from None
        return plot_sensitivity(built.trials, significance=significance)

    regularised = built.trials[built.trials["roi"] != "none"]
    figures = {"curves.png": lambda: plot_curves(built.trials, built.epochs)}
    if regularised[["lambda1", "lambda2"]].drop_duplicates().shape[0] > 1:
        figures["sensitivity.png"] = sensitivity
    for name, draw in figures.items():
        try:
            print(f"figure: {save_figure(draw(), Path(sweep_dir) / name)}")
        except UserError as exc:
            print(f"figure {name}: {exc}")
