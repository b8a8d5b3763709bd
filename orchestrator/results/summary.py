"""The paper-style report of a sweep's tables, as ``sweep run`` prints it at its end and
``report show`` prints it on demand (one pipeline, one default resample count), and the curves
and sensitivity figures a sweep writes into its folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attnmel.errors import UserError
from orchestrator.results.orh import DEFAULT_COVARIANCE
from orchestrator.results.stats import DEFAULT_RESAMPLES
from orchestrator.results.tables import PLACEMENT_COLUMNS, ResultTables

__all__ = ["NO_PREDICTIONS", "Summary", "summary_model", "summary_report", "write_figures"]

NO_PREDICTIONS = ("confidence intervals need per-image predictions, which these trials (of an older version) "
                  "did not store: re-run them to get CIs")  # fmt: skip


@dataclass
class Summary:
    """The paper-style summary of a sweep's tables, computed once for every renderer.

    ``summary``: one row per setting (:func:`orchestrator.results.paper.summarize`, with
    :func:`~orchestrator.results.paper.add_intervals`' columns when intervals were computed);
    ``excluded``: unfinished trials by status; ``per_trial``: each trial's own interval (or None);
    ``note``: why there are no intervals, to print under the table; ``problem``: why they could
    not be computed although asked for (e.g. a test split with one class).
    """

    summary: pd.DataFrame
    excluded: dict[str, int]
    per_trial: pd.DataFrame | None = None
    note: str | None = None
    problem: str | None = None


def summary_model(
    tables: ResultTables, *, intervals: bool = True, per_trial: bool = False, ensemble: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES, covariance: str = DEFAULT_COVARIANCE,
) -> Summary:
    """The paper-style table's numbers: per-setting means and, where the trials stored
    predictions and ``intervals`` is on, each setting's interval over seeds and test images
    (with ``per_trial`` each trial's own, with ``ensemble`` each setting's seed ensemble)."""
    from orchestrator.results.comparisons import setting_intervals
    from orchestrator.results.paper import add_intervals, summarize

    summary, excluded = summarize(tables.trials)
    if not intervals or summary.empty:
        return Summary(summary, excluded)
    if tables.predictions.empty:
        return Summary(summary, excluded, note=NO_PREDICTIONS)
    try:
        per_setting, trial_rows = setting_intervals(tables.trials, tables.predictions, n_resamples=n_resamples,
                                                    per_trial=per_trial, ensemble=ensemble, covariance=covariance)
    except ValueError as error:
        return Summary(summary, excluded, problem=f"no confidence intervals: {error}")
    if per_trial:  # with where each trial ran
        where = tables.trials.reindex(columns=["sweep", "trial_id", *PLACEMENT_COLUMNS])
        trial_rows = trial_rows.merge(where, on=["sweep", "trial_id"], how="left")
    return Summary(add_intervals(summary, per_setting), excluded, trial_rows if per_trial else None)


def summary_report(
    tables: ResultTables, *, paper: bool = False, intervals: bool = True, per_trial: bool = False,
    ensemble: bool = False, n_resamples: int = DEFAULT_RESAMPLES, model: Summary | None = None,
    covariance: str = DEFAULT_COVARIANCE,
) -> tuple[str, str | None]:
    """The paper-style table per dataset as text (see :func:`summary_model`). Returns ``(text,
    problem)``: ``problem`` says why the intervals are missing when they could not be computed
    (e.g. a test split with one class), else None. ``model``: the numbers, when already computed.
    Damaged trials (a file cut short) are named at the end."""
    from orchestrator.results.build import damaged_notes
    from orchestrator.results.text import format_summary, format_trial_intervals

    if model is None:
        model = summary_model(tables, intervals=intervals, per_trial=per_trial, ensemble=ensemble,
                              n_resamples=n_resamples, covariance=covariance)
    text = format_summary(model.summary, model.excluded, paper=paper)
    if model.note:
        text += model.note + "\n"
    if model.per_trial is not None:
        text += "\n" + format_trial_intervals(model.per_trial, model.summary, paper=paper)
    # name the file that did not arrive whole, for each trial left out for it
    text += "".join(f"damaged trial {note}\n" for note in damaged_notes(tables.trials))
    external, external_problem = _external(tables, intervals=intervals, n_resamples=n_resamples,
                                           covariance=covariance)
    return text + external, model.problem or external_problem


def _external(tables: ResultTables, *, intervals: bool, n_resamples: int,
              covariance: str) -> tuple[str, str | None]:
    """The external test sets' table ("" for sweeps without them) and, when their intervals
    could not be computed, why (the table is then printed without them)."""
    from attnmel.record import is_external_metric
    from orchestrator.results.external import external_summary
    from orchestrator.results.text import format_external

    if not any(is_external_metric(c) for c in tables.trials.columns):
        return "", None
    try:
        summary = external_summary(tables.trials, tables.predictions if intervals else None, n_resamples=n_resamples,
                                   covariance=covariance)
        return "\n" + format_external(summary), None
    except ValueError as error:
        return "\n" + format_external(external_summary(tables.trials)), f"no external confidence intervals: {error}"


def write_figures(sweep_dir: str | Path, built: ResultTables) -> None:
    """``curves.png`` and, for a sweep with a λ grid, ``sensitivity.png`` (cells that survive
    BH q < 0.05 against AttnMel-CNN marked) in the sweep folder."""
    from orchestrator.results.comparisons import sensitivity_family
    from orchestrator.results.plots import has_lambda_grid, plot_curves, plot_sensitivity, save_figure

    def sensitivity():
        try:
            significance = sensitivity_family(built.trials, built.predictions)
        except ValueError as error:
            raise UserError(f"cannot mark the cells: {error}") from None
        return plot_sensitivity(built.trials, significance=significance)

    figures = {"curves.png": lambda: plot_curves(built.trials, built.epochs)}
    if has_lambda_grid(built.trials):
        figures["sensitivity.png"] = sensitivity
    for name, draw in figures.items():
        try:
            print(f"figure: {save_figure(draw(), Path(sweep_dir) / name)}")
        except UserError as exc:
            print(f"figure {name}: {exc}")
