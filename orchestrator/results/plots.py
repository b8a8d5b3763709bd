"""Figures from a sweep's results: λ1 × λ2 sensitivity heat maps, per-epoch curves, reliability
diagrams, and the attention maps of each model's best trial on the same test images (the
paper's Fig. 3). The statistics they mark come computed (:mod:`orchestrator.results.comparisons`,
:mod:`~orchestrator.results.calibration`); the figures draw them.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global backend
state) and written by :func:`save_figure`.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter

from attnmel.atomic import atomic_output
from attnmel.errors import UserError
from orchestrator.results.paper import PAPER_LAMBDAS, PAPER_ORDER, at_paper_lambda, is_paper_lambda
from orchestrator.results.build import find_sweep_dirs, load_tables, terminated
from orchestrator.results.tables import ResultTables

__all__ = [
    "METRICS", "AttentionGrid", "SIGNIFICANCE_Q", "attention_grid", "check_output", "has_lambda_grid", "plot_attention",
    "plot_calibration", "plot_curves", "plot_sensitivity", "save_figure",
]  # fmt: skip

METRICS = ("auc", "ap")
_ROI_ORDER = ("lesion", "dermo", "bkg")
_SPLIT_TITLES = {"val": "validation", "test": "test"}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
SIGNIFICANCE_Q = 0.05  # cells of the sensitivity map whose BH q is below this are marked


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def check_output(out: str | Path) -> str:
    """The image format of ``out`` (png, pdf, svg); ``UserError`` for another suffix or a missing folder."""
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in ("png", "pdf", "svg"):
        raise UserError(f"--out {out}: use a .png, .pdf or .svg file name")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: directory {out.parent} does not exist")
    return fmt


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Write ``fig`` to ``out`` atomically (format from the suffix)."""
    fmt = check_output(out)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    return Path(out)


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


def has_lambda_grid(trials: pd.DataFrame) -> bool:
    """Whether the regularised trials ran at more than one (λ1, λ2): what a sensitivity map needs."""
    regularised = trials[trials["roi"] != "none"]
    return regularised[["lambda1", "lambda2"]].drop_duplicates().shape[0] > 1


def _marked(significance: pd.DataFrame | None, dataset: str, roi: str, split: str) -> set[tuple[float, float]]:
    """(λ1, λ2) of the cells whose comparison with the reference survives BH q < SIGNIFICANCE_Q."""
    if significance is None or significance.empty:
        return set()
    rows = significance[(significance["dataset"] == dataset) & (significance["roi"] == roi)
                        & (significance["split"] == split) & (significance["q_bh"] < SIGNIFICANCE_Q)]  # fmt: skip
    return {(float(a), float(b)) for a, b in zip(rows["lambda1"], rows["lambda2"])}


def plot_sensitivity(trials: pd.DataFrame, metric: str = "auc", *, significance: pd.DataFrame | None = None) -> Figure:
    """Heat maps of mean validation and test ``metric`` over λ1 × λ2, one row per (dataset, ROI).

    Colours are centred on the unregularised AttnMel-CNN of the same dataset (blue: better,
    red: worse), whose mean is also given in each panel's title; the paper's λ is outlined.
    ``significance`` (``comparisons.sensitivity_family``'s frame) marks with a star (★) the
    cells whose expected single-model Δ against that reference has BH q < 0.05 in the
    family it names.
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
    fig = Figure(figsize=(2 * width, height * len(rows)))
    axes = fig.subplots(len(rows), 2, squeeze=False)
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
            for l1, l2 in _marked(significance, dataset, roi, split):
                cell = (lambda1s.index(l1), lambda2s.index(l2)) if l1 in lambda1s and l2 in lambda2s else None
                if cell in texts:
                    texts[cell] = "★ " + texts[cell]
            _heatmap(ax, grid, texts, ref_mean, lambda1s, lambda2s)
            label = f"{_SPLIT_TITLES[split]} {metric.upper()}"
            if ref_n:
                spread = "" if math.isnan(ref_std) else f" ± {ref_std:.3f}"
                ref_text = f"unregularised AttnMel-CNN: {ref_mean:.3f}{spread} (n={ref_n})"
            else:
                ref_text = "no unregularised AttnMel-CNN trials for reference"
            ax.set_title(f"{dataset} · ROI {roi} · mean {label}\n{ref_text}", fontsize=10)
    title = (f"λ sensitivity of AttnMel-CNN ({metric.upper()} at each trial's best validation epoch; "
             f"dashed box: paper's λ1={PAPER_LAMBDAS[0]:g}, λ2={PAPER_LAMBDAS[1]:g})")  # fmt: skip
    if significance is not None and not significance.empty:
        families = "; ".join(dict.fromkeys(significance["family"]))
        title += (f"\n★: Benjamini–Hochberg q < {SIGNIFICANCE_Q:g} for Δ of the expected single-model {metric.upper()} "
                  f"against unregularised AttnMel-CNN; families: {families}")  # fmt: skip
    elif significance is not None:
        title += "\nno cell marked: significance needs per-image predictions of the cells and the reference"
    fig.suptitle(title, fontsize=11)
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
            if is_paper_lambda(l1, l2):
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
    fig = Figure(figsize=(8.5 * len(datasets), 5))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for dataset, ax in zip(datasets, axes[0]):
        part = merged[merged["dataset"] == dataset]
        settings, omitted = _curve_settings(part, all_lambdas)
        many = pd.Series([s.paper_name for s in settings]).value_counts()
        colours = matplotlib.colormaps["tab10" if len(settings) <= 10 else "tab20"]
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


def plot_calibration(curves: pd.DataFrame) -> Figure:
    """Reliability diagrams (``calibration.reliability_curves``' frame): one panel per setting,
    one line per trial (mean probability → share of melanomas per non-empty bin, marker size by
    the images in the bin), the diagonal of perfect calibration, mean Brier and ECE in the title."""
    if curves.empty:
        raise UserError("no finished trials with predictions (of both classes) to draw reliability diagrams of")
    settings = list(dict.fromkeys(zip(curves["dataset"], curves["setting"])))
    columns = min(3, len(settings))
    rows = math.ceil(len(settings) / columns)
    fig = Figure(figsize=(4.2 * columns, 4.0 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (dataset, setting) in zip(axes, settings):
        part = curves[(curves["dataset"] == dataset) & (curves["setting"] == setting)]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, linestyle="--")
        trials = part.drop_duplicates(["sweep", "trial_id"])
        for k, ((_, trial_id), trial) in enumerate(part.groupby(["sweep", "trial_id"], sort=False)):
            ax.plot(trial["predicted"], trial["observed"], marker=_MARKERS[k % len(_MARKERS)], lw=1.2, alpha=0.85,
                    label=f"seed {trial['seed'].iloc[0]}")  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("mean predicted melanoma probability")
        ax.set_ylabel("share of melanomas")
        ax.set_title(f"{dataset} {setting}\nBrier {trials['brier'].mean():.3f}, ECE {trials['ece'].mean():.3f} "
                     f"(mean of {len(trials)})", fontsize=9)  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    for ax in axes[len(settings):]:
        ax.set_visible(False)
    split = curves["split"].iloc[0]
    fig.suptitle(f"reliability on the {split} split: {int(curves['bins'].iloc[0])} equal-width probability bins "
                 "(empty bins left out); dashed: perfect calibration", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Fig. 3

CAM_MODEL = "VGG-16-GAP"
_SPLITS = ("test", "val")


@dataclass
class AttentionGrid:
    """What Fig. 3 shows: N evaluated crops and, per row, one model's maps of them."""

    dataset: str
    split: str
    image_ids: list[str]
    labels: list[int]
    images: np.ndarray  # (N, c, c, 3) uint8: the evaluated centre crops
    rows: list[tuple[str, str, np.ndarray, np.ndarray]]  # (paper name, map, (N, m, m) in [0, 1], probs (N,))
    trials: dict[str, str]  # paper name → "sweep/trial_id" of its best trial


def _finished_trials(path: str | Path, tables: ResultTables | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TERMINATED trials of every sweep under ``path`` with their directory (``dir``), and the
    sweeps' predictions; ``tables``: the tables of the one sweep at ``path``, already loaded."""
    frames, predictions = [], []
    loaded = [(Path(path), tables)] if tables is not None else [(d, load_tables(d)) for d in find_sweep_dirs(path)]
    for sweep_dir, sweep_tables in loaded:
        done = terminated(sweep_tables.trials)[0]
        frames.append(done.assign(dir=[str(sweep_dir / d) for d in done["trial_dir"]]))
        predictions.append(sweep_tables.predictions)
    return pd.concat(frames, ignore_index=True), pd.concat(predictions, ignore_index=True)


def _choose_images(predictions: pd.DataFrame, chosen: pd.DataFrame, split: str, n: int) -> pd.DataFrame:
    """``n`` images every chosen trial scored: half melanoma (rounded up), half not, each by id."""
    keys = set(zip(chosen["sweep"], chosen["trial_id"]))
    of_chosen = pd.MultiIndex.from_frame(predictions[["sweep", "trial_id"]]).isin(keys)
    rows = predictions[of_chosen & (predictions["split"] == split).to_numpy()]
    if rows.empty:
        raise UserError(f"no per-image {split} predictions for the chosen trials (run with this version; "
                        "older trials did not store them)")  # fmt: skip
    counts = rows.groupby("image_id")["trial_id"].size()
    common = rows[rows["image_id"].isin(counts[counts == len(keys)].index)]
    images = common.drop_duplicates("image_id")[["image_id", "label"]].sort_values("image_id")
    melanoma, other = images[images["label"] == 1], images[images["label"] == 0]
    n_mel = min(len(melanoma), max((n + 1) // 2, n - len(other)))
    return pd.concat([melanoma.head(n_mel), other.head(n - n_mel)], ignore_index=True)


def attention_grid(
    path: str | Path, n_images: int, split: str = "test", *, data_root: str | None = None, device: str = "auto",
    tables: ResultTables | None = None,
) -> AttentionGrid:
    """Fig. 3's data: per AttnMel model of the sweep (paper order; VGG-16-GAP's CAM last) its best
    finished trial by validation AUC, and its maps of ``n_images`` images of ``split``, half
    melanoma, read from the dataset in the trial's config and preprocessed as in evaluation.
    ``tables``: the sweep's tables when the caller has them (``path`` is then that one sweep)."""
    from attnmel.checkpoint import final_checkpoint

    if n_images < 1:
        raise UserError(f"--images must be at least 1, got {n_images}")
    if split not in _SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(_SPLITS)}")
    done, predictions = _finished_trials(path, tables)
    names = [n for n in PAPER_ORDER if n.startswith("AttnMel-CNN")] + [CAM_MODEL]
    names = [n for n in names if n in set(done["paper_name"])]
    if not names:
        raise UserError(f"no finished AttnMel-CNN or {CAM_MODEL} trials in {path}")
    done = done[done["paper_name"].isin(names) & done["val_auc"].notna()]
    if done["dataset"].nunique() > 1:
        raise UserError(f"{path} holds sweeps of {', '.join(sorted(set(done['dataset'])))}; give one sweep directory")
    chosen = done.sort_values(["val_auc", "trial_id"], ascending=[False, True]).drop_duplicates("paper_name")
    chosen = chosen.set_index("paper_name").loc[names].reset_index()
    picked = _choose_images(predictions, chosen, split, n_images)
    ids = picked["image_id"].tolist()

    weights = {}
    for trial in chosen.itertuples():
        final = final_checkpoint(Path(trial.dir))
        if final is None:
            raise UserError(f"best {trial.paper_name} trial {trial.dir} has no finished checkpoint")
        weights[trial.paper_name] = final / "best.pt"
    absent = next((file for file in weights.values() if not file.is_file()), None)
    if absent is not None:  # said before torch is imported: a page of copied tables needs none
        raise UserError(f"checkpoint {absent} does not exist")

    import torch

    from attnmel.data.augment import centre_crop
    from attnmel.data.layout import load_splits
    from attnmel.predict import load_model  # torch: only for this figure

    models = {name: load_model(file, device=device) for name, file in weights.items()}
    data = next(iter(models.values())).config.data
    root = Path(data_root or data.root)
    # the trials' data source (masks, CSV keys, carving) at this root: the same carved splits
    samples = {s.image_id: s for s in load_splits(dataclasses.replace(data, root=str(root)))[split]}
    missing = [i for i in ids if i not in samples]
    if missing:
        raise UserError(f"{root} has no {split} image {missing[0]} (is it the trials' dataset? --data-root)")

    rows, crops = [], None
    for name, model in models.items():
        raw = np.stack([model.preprocess(samples[i].image) for i in ids])  # (N, 3, S, S)
        if crops is None:
            crops = centre_crop(raw, model.config.data.crop_size).transpose(0, 2, 3, 1)
        maps: dict[str, list] = {}
        probs = []
        for _, p, batch_maps in model.score(torch.from_numpy(raw), with_maps=True):
            probs.append(p)
            for key, value in batch_maps.items():
                maps.setdefault(key, []).append(value)
        rows += [(name, key, np.concatenate(value), np.concatenate(probs)) for key, value in maps.items()]
    trials = {t.paper_name: f"{t.sweep}/{t.trial_id}" for t in chosen.itertuples()}
    return AttentionGrid(data.dataset, split, ids, picked["label"].tolist(), np.ascontiguousarray(crops), rows, trials)


def plot_attention(grid: AttentionGrid) -> Figure:
    """The Fig. 3 grid: the images on top, then one row per model and map, blended as heat maps
    (jet, re-normalised to [0, 1]); each map cell gives that model's melanoma probability."""
    n, rows = len(grid.image_ids), len(grid.rows) + 1
    fig = Figure(figsize=(1.7 * n + 1.6, 1.7 * rows + 0.8))
    axes = fig.subplots(rows, n, squeeze=False)
    names = {"pool3": "pool-3", "pool4": "pool-4", "cam": "CAM"}
    for j, (image_id, label) in enumerate(zip(grid.image_ids, grid.labels)):
        axes[0, j].imshow(grid.images[j])
        axes[0, j].set_title(f"{image_id}\n{'melanoma' if label else 'other'}", fontsize=8)
        for i, (model, key, maps, probs) in enumerate(grid.rows, start=1):
            ax = axes[i, j]
            side = grid.images.shape[1]
            ax.imshow(grid.images[j])
            ax.imshow(maps[j], cmap="jet", alpha=0.5, vmin=0, vmax=1, extent=(-0.5, side - 0.5, side - 0.5, -0.5))
            ax.text(0.03, 0.04, f"p={probs[j]:.2f}", transform=ax.transAxes, fontsize=7, color="white")
    for i, ax_row in enumerate(axes):
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
        label = "image" if i == 0 else f"{grid.rows[i - 1][0]}\n{names.get(grid.rows[i - 1][1], grid.rows[i - 1][1])}"
        ax_row[0].set_ylabel(label, fontsize=8)
    fig.suptitle(f"Attention maps ({grid.dataset} {grid.split} images; each model's best trial by validation AUC)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig
