"""Figures from the result tables: λ1 × λ2 sensitivity heat maps and per-epoch curves.

Both take the ``trials`` / ``epochs`` frames of :mod:`orchestrator.report` and write one
image file (matplotlib's Agg backend, so no display is needed).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402

from attnmel.errors import UserError  # noqa: E402
from orchestrator.paper_table import PAPER_LAMBDAS, PAPER_ORDER, at_paper_lambda  # noqa: E402
from orchestrator.report import terminated  # noqa: E402

__all__ = ["METRICS", "plot_curves", "plot_sensitivity", "save_figure"]

METRICS = ("auc", "ap")
_ROI_ORDER = ("lesion", "dermo", "bkg")
_SPLIT_TITLES = {"val": "validation", "test": "test"}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Write ``fig`` to ``out`` atomically (format from the suffix) and close it."""
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in ("png", "pdf", "svg"):
        raise UserError(f"--out {out}: use a .png, .pdf or .svg file name")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: directory {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)
    return out


def _stats(values: pd.Series) -> tuple[float, float, int]:
    values = values.dropna()
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


def _cell_text(mean: float, std: float, n: int) -> str:
    spread = "—" if math.isnan(std) else f"{std:.3f}"
    return f"{mean:.3f}\n± {spread}\nn={n}"


def _lambda_label(value: float) -> str:
    return "0" if value == 0 else f"{value:g}"


def plot_sensitivity(trials: pd.DataFrame, metric: str = "auc") -> Figure:
    """Heat maps of mean validation and test ``metric`` over λ1 × λ2, one row per (dataset, ROI).

    Colours are centred on the unregularised AttnMel-CNN of the same dataset (blue: better,
    red: worse), whose mean is also given in each panel's title; the paper's λ is outlined.
    """
    _check_metric(metric)
    done, _ = terminated(trials)
    attn = done[done["variant"] == "attnmel"]
    regularised = attn[attn["roi"] != "none"]
    if regularised.empty:
        raise UserError("no finished regularised attnmel trials (ROI lesion/dermo/bkg) to plot")
    rois = [r for r in _ROI_ORDER if r in set(regularised["roi"])]
    rois += sorted(set(regularised["roi"]) - set(rois))
    rows = [(d, r) for d in sorted(set(regularised["dataset"])) for r in rois
            if ((regularised["dataset"] == d) & (regularised["roi"] == r)).any()]  # fmt: skip

    lambda1s = sorted(set(regularised["lambda1"]))
    lambda2s = sorted(set(regularised["lambda2"]))
    width = max(4.5, 1.05 * len(lambda2s) + 2.2)
    height = max(3.8, 0.75 * len(lambda1s) + 1.8)
    fig, axes = plt.subplots(len(rows), 2, figsize=(2 * width, height * len(rows)), squeeze=False)
    for (dataset, roi), panel_row in zip(rows, axes):
        cells = regularised[(regularised["dataset"] == dataset) & (regularised["roi"] == roi)]
        reference = attn[(attn["dataset"] == dataset) & (attn["roi"] == "none")]
        for split, ax in zip(("val", "test"), panel_row):
            column = f"{split}_{metric}"
            grid = np.full((len(lambda1s), len(lambda2s)), np.nan)
            texts: dict[tuple[int, int], str] = {}
            for (l1, l2), group in cells.groupby(["lambda1", "lambda2"]):
                mean, std, n = _stats(group[column])
                if n:
                    i, j = lambda1s.index(l1), lambda2s.index(l2)
                    grid[i, j] = mean
                    texts[(i, j)] = _cell_text(mean, std, n)
            ref_mean, ref_std, ref_n = _stats(reference[column])
            _heatmap(ax, grid, texts, ref_mean, lambda1s, lambda2s)
            label = f"{_SPLIT_TITLES[split]} {metric.upper()}"
            if ref_n:
                spread = "" if math.isnan(ref_std) else f" ± {ref_std:.3f}"
                ref_text = f"unregularised AttnMel-CNN: {ref_mean:.3f}{spread} (n={ref_n})"
            else:
                ref_text = "no unregularised AttnMel-CNN trials for reference"
            ax.set_title(f"{dataset} · ROI {roi} · mean {label}\n{ref_text}", fontsize=10)
    fig.suptitle(
        f"λ sensitivity of AttnMel-CNN ({metric.upper()} at each trial's best validation epoch; "
        f"dashed box: paper's λ1={PAPER_LAMBDAS[0]:g}, λ2={PAPER_LAMBDAS[1]:g})",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def _heatmap(ax, grid: np.ndarray, texts: dict, reference: float, lambda1s: list, lambda2s: list) -> None:
    finite = grid[np.isfinite(grid)]
    if math.isnan(reference):
        norm, cmap, bar_label = Normalize(finite.min(), finite.max() + 1e-9), "viridis", "mean"
    else:
        # Symmetric around the reference so equal gains and losses get equal colour strength.
        half = max(float(np.max(np.abs(finite - reference))), 0.005)
        norm, cmap, bar_label = Normalize(reference - half, reference + half), "RdBu", "mean (centre: unregularised)"
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#dddddd")  # grey: no finished trial
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=colormap, norm=norm, aspect="auto", origin="lower")
    for (i, j), text in texts.items():
        shade = norm(grid[i, j])
        ink = "white" if (shade < 0.2 or shade > 0.8) else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=ink)
    # Categorical axes: λ grids are logarithmic and include 0.
    ax.set_xticks(range(len(lambda2s)), [_lambda_label(v) for v in lambda2s])
    ax.set_yticks(range(len(lambda1s)), [_lambda_label(v) for v in lambda1s])
    ax.set_xlabel("λ2 (pool-4 attention Dice weight)")
    ax.set_ylabel("λ1 (pool-3 attention Dice weight)")
    for i, l1 in enumerate(lambda1s):
        for j, l2 in enumerate(lambda2s):
            if np.isclose(l1, PAPER_LAMBDAS[0]) and np.isclose(l2, PAPER_LAMBDAS[1]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, linestyle="--", linewidth=2, color="k"))
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(bar_label, fontsize=8)
    bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3f"))  # as in the cells; no offset
    if not math.isnan(reference):
        bar.ax.axhline(reference, color="k", linewidth=1.5)
        # Show only the span the cells and the reference cover (not e.g. AUC above 1).
        low, high = min(float(finite.min()), reference), max(float(finite.max()), reference)
        if high - low > 0.005:
            bar.ax.set_ylim(low, high)


def _curve_label(name: str, lambda1: float, lambda2: float, many_lambdas: bool) -> str:
    return f"{name} (λ1={lambda1:g}, λ2={lambda2:g})" if many_lambdas else name


def _curve_settings(part: pd.DataFrame, all_lambdas: bool) -> tuple[list, int]:
    """The (model, λ1, λ2) settings to draw, in paper order, and how many were left out."""
    settings = part[["paper_name", "roi", "lambda1", "lambda2"]].drop_duplicates()
    keep = pd.Series(True, index=settings.index)
    if not all_lambdas:
        # Like the paper table: a regularised model at the paper's λ; a model never run at the
        # paper's λ (e.g. an Optuna search) keeps all its settings.
        at_paper = settings.apply(lambda s: at_paper_lambda(s.roi, s.lambda1, s.lambda2), axis=1)
        has_paper = at_paper.groupby(settings["paper_name"]).transform("any")
        keep = at_paper | ~has_paper
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    chosen = sorted(
        settings[keep][["paper_name", "lambda1", "lambda2"]].itertuples(index=False),
        key=lambda s: (rank.get(s.paper_name, len(rank)), s.paper_name, s.lambda1, s.lambda2),
    )
    return chosen, int((~keep).sum())


def plot_curves(
    trials: pd.DataFrame, epochs: pd.DataFrame, metric: str = "auc", *, all_lambdas: bool = False
) -> Figure:
    """Per-epoch validation ``metric`` of each model (mean over seeds, band = min–max).

    Uses the trials that ran to their last epoch; one panel per dataset. Regularised models
    are drawn at the paper's λ only (when run there) unless ``all_lambdas``.
    """
    _check_metric(metric)
    done, _ = terminated(trials)
    column = f"val_{metric}"
    keys = ["sweep", "trial_id"]
    merged = epochs.merge(done[[*keys, "dataset", "paper_name", "roi", "lambda1", "lambda2"]], on=keys, how="inner")
    if merged.empty:
        raise UserError("no epochs of finished trials to plot")
    datasets = sorted(set(merged["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(8.5 * len(datasets), 5), squeeze=False)
    for dataset, ax in zip(datasets, axes[0]):
        part = merged[merged["dataset"] == dataset]
        settings, omitted = _curve_settings(part, all_lambdas)
        many = pd.Series([s.paper_name for s in settings]).value_counts()
        colours = plt.get_cmap("tab10" if len(settings) <= 10 else "tab20")
        for k, (name, l1, l2) in enumerate(settings):
            rows = part[(part["paper_name"] == name) & (part["lambda1"] == l1) & (part["lambda2"] == l2)]
            table = rows.pivot_table(index="epoch", columns=keys, values=column, aggfunc="last")
            colour = colours(k % colours.N)
            n = table.shape[1]
            label = f"{_curve_label(name, l1, l2, many[name] > 1)} (n={n})"
            # Markers and dashes differ too, so curves that coincide (e.g. AUC 1.0) stay visible.
            ax.plot(table.index, table.mean(axis=1), color=colour, lw=1.8, label=label,
                    marker=_MARKERS[k % len(_MARKERS)], markersize=5, linestyle=("-", "--", ":")[k % 3])  # fmt: skip
            if n > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colour, alpha=0.15, lw=0)
        title = f"{dataset}: validation {metric.upper()} per epoch (mean over seeds; band: min–max)"
        if omitted:
            title += f"\n{omitted} setting(s) at other λ not shown (--all-lambdas draws them)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {metric.upper()}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig
