"""What a sweep's HTML page shows, gathered once: :func:`page_model` reads a sweep folder (or a
results root) into a :class:`Page`, and :mod:`orchestrator.results.html` only formats it.

Every number comes from the result tables and the results functions that the text tables use
(:mod:`~orchestrator.results.paper`, :mod:`~orchestrator.results.comparisons`); the figures
are :mod:`~orchestrator.results.plots`' own, as PNG bytes. What the page adds is the record of
what ran (``sweep.json``, each trial's ``data_info.json``), the methods paragraph written from
the spec, and the list of what a reader can and cannot conclude.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import yaml

from attnmel.errors import UserError
from orchestrator.layout import folders
from orchestrator.layout.status import ENDED, TrialStatus
from orchestrator.results.build import find_sweep_dirs, load_tables, terminated
from orchestrator.results.paper import PAPER_LAMBDAS, PAPER_ORDER, TABLE3_DATASET, at_paper_lambda, is_paper_lambda
from orchestrator.results.paper import summarize_attention
from orchestrator.results.orh import DEFAULT_COVARIANCE
from orchestrator.results.stats import DEFAULT_RESAMPLES
from orchestrator.results.summary import Summary, summary_model
from orchestrator.results.tables import ResultTables

__all__ = [
    "ATTENTION_IMAGES", "Figure", "Note", "Page", "SpecReader", "SweepRun", "page_model", "png_bytes",
]

log = logging.getLogger(__name__)

ATTENTION_IMAGES = 6  # images in the page's Fig. 3 (half melanoma)
_PAPER_CROP = 224  # §3.1: 224 × 224 crops of 256 × 256 images
# sweep.json's "spec" → the sweep's spec (its .train, .dataset, .grid, .resources, .n_trials are read
# here); handed in by the caller (the CLI gives orchestrator.sweep.spec.spec_from_dict), so the
# results never import the sweep package. A UserError, KeyError, TypeError or ValueError: no spec.
SpecReader = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class SweepRun:
    """Section 1 for one sweep folder: what ran, where, when and on what."""

    name: str
    folder: Path
    code_version: str | None
    created: datetime | None  # sweep.json's creation time: when the sweep started
    last_report: datetime | None  # the latest result any trial reported
    spec: Any  # what the page's SpecReader made of sweep.json; None when it holds no spec this version reads
    spec_text: str | None  # the stored spec as YAML
    expected_trials: int  # what the spec runs (else the trial folders found)
    statuses: dict[str, int]
    trial_hours: float  # sum of the trials' wall time
    data: dict[str, dict[str, dict[str, int]]]  # dataset → split → images/melanoma/other, from data_info.json

    @property
    def wall_seconds(self) -> float | None:
        if self.created is None or self.last_report is None:
            return None
        return max((self.last_report - self.created).total_seconds(), 0.0)

    @property
    def gpu_hours(self) -> float | None:
        return None if self.spec is None else self.trial_hours * self.spec.resources.gpus

    @property
    def cpu_hours(self) -> float | None:
        return None if self.spec is None else self.trial_hours * self.spec.resources.cpus


@dataclass(frozen=True)
class Figure:
    """A picture of the page: PNG bytes and the text that stands in for it."""

    png: bytes
    alt: str


@dataclass(frozen=True)
class Note:
    """One line of "what this page can and cannot tell": ``can`` False for a limit."""

    can: bool
    text: str


@dataclass
class Page:
    """Everything the page shows, in its order (see :mod:`orchestrator.results.html`)."""

    title: str
    written: datetime
    live: bool  # the sweep is running: the page reloads itself
    runs: list[SweepRun]
    trials: pd.DataFrame  # every trial, in the paper's order of models
    summary: pd.DataFrame  # paper-style rows of the finished trials, with intervals when possible
    excluded: dict[str, int]
    interval_note: str | None  # why the summary has no intervals, when it has none
    table3: pd.DataFrame
    figures: dict[str, Figure] = field(default_factory=dict)  # "curves", "sensitivity", "attention"
    figure_notes: dict[str, str] = field(default_factory=dict)  # why a figure is missing
    methods: str = ""
    notes: list[Note] = field(default_factory=list)
    # The statistics' own text tables (comparisons, power, operating points), as `report` prints
    # them, or why each is missing.
    texts: dict[str, str] = field(default_factory=dict)
    text_notes: dict[str, str] = field(default_factory=dict)
    claims: pd.DataFrame | None = None  # ``claims.evaluate_claims``' frame, or None (``claims_note`` says why)
    claims_note: str | None = None

    @property
    def done(self) -> int:
        return int(self.trials["status"].isin(ENDED).sum())

    @property
    def total(self) -> int:
        return max(sum(run.expected_trials for run in self.runs), len(self.trials))

    @property
    def statuses(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.trials["status"].value_counts().sort_index().items()}


# --------------------------------------------------------------------------- what ran


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return None
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    return None


def _meta(sweep_dir: Path) -> dict[str, Any]:
    try:
        meta = json.loads((sweep_dir / folders.SWEEP_META).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _spec(meta: dict[str, Any], read_spec: SpecReader) -> Any:
    """The sweep's spec, or None when sweep.json holds none this version reads (an older one)."""
    try:
        return read_spec(meta["spec"])
    except (UserError, KeyError, TypeError, ValueError) as exc:
        log.info("%s: no readable spec (%s)", meta.get("name"), exc)
        return None


def _data_counts(sweep_dir: Path, trials: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """Images per split of each dataset, from the first finished trial that recorded them."""
    from attnmel.checkpoint import final_checkpoint, read_data_info

    counts: dict[str, dict[str, dict[str, int]]] = {}
    for trial in trials.sort_values("trial_id").itertuples():
        if trial.dataset in counts or not isinstance(trial.trial_dir, str):
            continue
        final = final_checkpoint(sweep_dir / trial.trial_dir)
        info = read_data_info(final) if final is not None else None
        if info and isinstance(info.get("counts"), dict):
            counts[str(trial.dataset)] = {split: {k: int(v) for k, v in c.items()} for split, c in info["counts"].items()}
    return counts


def _run(sweep_dir: Path, trials: pd.DataFrame, read_spec: SpecReader) -> SweepRun:
    meta = _meta(sweep_dir)
    name = str(meta.get("name") or sweep_dir.name)
    mine = trials[trials["sweep"] == name]
    spec = _spec(meta, read_spec)
    stored = meta.get("spec")
    reported = pd.to_numeric(mine["reported_at"], errors="coerce").dropna()
    return SweepRun(
        name=name,
        folder=sweep_dir,
        code_version=meta.get("code_version"),
        created=_time(meta.get("created")),
        last_report=_time(float(reported.max())) if len(reported) else None,
        spec=spec,
        spec_text=yaml.safe_dump(stored, sort_keys=False, allow_unicode=True) if isinstance(stored, dict) else None,
        expected_trials=spec.n_trials if spec is not None else len(mine),
        statuses={str(k): int(v) for k, v in mine["status"].value_counts().sort_index().items()},
        trial_hours=float(mine["wall_seconds"].fillna(0).sum()) / 3600,
        data=_data_counts(sweep_dir, mine),
    )


# --------------------------------------------------------------------------- the summary and the trials


def _paper_rank(trials: pd.DataFrame) -> pd.DataFrame:
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    order = trials.assign(_rank=trials["paper_name"].map(lambda n: rank.get(n, len(rank))))
    order = order.sort_values(["sweep", "dataset", "_rank", "paper_name", "lambda1", "lambda2", "seed", "trial_id"],
                              kind="stable", na_position="last")  # fmt: skip
    return order.drop(columns="_rank").reset_index(drop=True)


LIVE_INTERVALS = "the intervals are computed when the sweep has ended (a bootstrap of every setting)"


def _summary(tables: ResultTables, n_resamples: int, live: bool, given: Summary | None,
             covariance: str = DEFAULT_COVARIANCE) -> tuple[Summary, str | None]:
    """The paper-style summary (``given`` when the caller has computed it) and why it has no
    intervals. While the sweep runs it has none: the bootstrap is most of a page's cost, and its
    numbers would move."""
    if given is not None:
        model = given
    elif live:
        model = summary_model(tables, intervals=False)
        return model, None if model.summary.empty else LIVE_INTERVALS
    else:
        model = summary_model(tables, n_resamples=n_resamples, covariance=covariance)
    return model, model.note or model.problem


# --------------------------------------------------------------------------- figures


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _figures(path: Path, tables: ResultTables, *, live: bool, attention: bool) -> tuple[dict, dict]:
    from orchestrator.results.plots import attention_grid, has_lambda_grid, plot_attention, plot_curves, plot_sensitivity

    figures: dict[str, Figure] = {}
    notes: dict[str, str] = {}
    try:
        figures["curves"] = Figure(png_bytes(plot_curves(tables.trials, tables.epochs)),
                                   "Line chart: validation AUC per epoch of each model, mean over seeds with a "
                                   "min–max band, one panel per dataset")  # fmt: skip
    except UserError as exc:
        notes["curves"] = str(exc)
    if has_lambda_grid(tables.trials):
        try:
            significance = None
            if not live and not tables.predictions.empty:  # the marks: BH q over the family of λ cells
                from orchestrator.results.comparisons import sensitivity_family

                significance = sensitivity_family(tables.trials, tables.predictions)
            figures["sensitivity"] = Figure(png_bytes(plot_sensitivity(tables.trials, significance=significance)),
                                            "Heat maps: mean validation and test AUC in each λ1 × λ2 cell per ROI, "
                                            "coloured against the unregularised AttnMel-CNN")  # fmt: skip
        except (UserError, ValueError) as exc:
            notes["sensitivity"] = str(exc)
    else:
        notes["sensitivity"] = "the sweep has no grid of λ settings (at most one λ1, λ2 pair per regularised model)"
    if live:
        notes["calibration"] = "drawn when the sweep has ended"
    elif tables.predictions.empty:
        notes["calibration"] = "reliability diagrams need per-image predictions (trials of an older version have none)"
    else:
        from orchestrator.results.calibration import reliability_curves
        from orchestrator.results.plots import plot_calibration

        # A λ grid would give a panel per cell (51 for the λ sweep: 7 s and 1.4 MB); the page shows
        # the settings the paper reports, as the curves do, and `plot calibration` draws them all.
        trials = tables.trials
        at_paper = [at_paper_lambda(r, a, b) for r, a, b in zip(trials["roi"], trials["lambda1"], trials["lambda2"])]
        shown = trials[at_paper] if has_lambda_grid(trials) and any(at_paper) else trials
        try:
            figures["calibration"] = Figure(png_bytes(plot_calibration(reliability_curves(shown, tables.predictions))),
                                            "Reliability diagrams: per setting, each trial's share of melanomas against "
                                            "its mean predicted probability in equal-width bins, with the diagonal")  # fmt: skip
        except (UserError, ValueError) as exc:
            notes["calibration"] = str(exc)
    if live:
        notes["attention"] = "drawn when the sweep has ended (it loads each model's best checkpoint)"
    elif not attention:
        notes["attention"] = "not drawn (the page was written without it)"
    else:
        try:
            grid = attention_grid(path, ATTENTION_IMAGES, tables=tables)
            models = ", ".join(dict.fromkeys(row[0] for row in grid.rows))
            figures["attention"] = Figure(png_bytes(plot_attention(grid), dpi=90),
                                          f"Grid of {len(grid.image_ids)} {grid.split} images ({', '.join(grid.image_ids)}) "
                                          f"and, below each, the attention maps of {models} blended over it")  # fmt: skip
        except (UserError, OSError, ValueError, KeyError) as exc:
            notes["attention"] = str(exc)
    return figures, notes


REFERENCE = "AttnMel-CNN"  # what every other setting is compared with: the unregularised attention model
HEADLINE = "AttnMel-CNN-Lesion"  # the paper's headline claim: lesion regularisation beats AttnMel-CNN


def _statistics(tables: ResultTables, *, live: bool, n_resamples: int,
                covariance: str = DEFAULT_COVARIANCE) -> tuple[dict[str, str], dict[str, str]]:
    """The comparisons against the reference (a family with Holm and BH adjusted p), the power of
    the headline comparison and the operating points, as ``report compare/power/show`` print them."""
    from orchestrator.results.comparisons import compare_family
    from orchestrator.results.paper import summarize_operating_points
    from orchestrator.results.power import power_from_sweep
    from orchestrator.results.text import format_family, format_operating_points, format_power

    texts: dict[str, str] = {}
    notes: dict[str, str] = {}
    points = summarize_operating_points(tables.trials)
    if points.empty:
        notes["operating"] = "no finished trial with per-image predictions"
    else:
        texts["operating"] = format_operating_points(points)
    if live:
        notes["family"] = notes["power"] = "computed when the sweep has ended"
        return texts, notes
    if tables.predictions.empty:
        notes["family"] = notes["power"] = "paired comparisons need per-image predictions (an older version stored none)"
        return texts, notes
    done = terminated(tables.trials)[0]
    if REFERENCE not in set(done["paper_name"]) or done["paper_name"].nunique() < 2:
        notes["family"] = notes["power"] = f"the sweep has no finished {REFERENCE} trials and other settings to compare"
        return texts, notes
    try:
        texts["family"] = format_family(compare_family(tables.trials, tables.predictions, "all", REFERENCE,
                                                       n_resamples=n_resamples, covariance=covariance))
    except ValueError as exc:
        notes["family"] = str(exc)
    headline = HEADLINE if HEADLINE in set(done["paper_name"]) else None
    if headline is None:
        notes["power"] = f"the sweep has no {HEADLINE} trials (the paper's headline comparison)"
    else:
        paper_pair = [is_paper_lambda(a, b) for a, b in zip(done["lambda1"], done["lambda2"])]
        at_paper = done[(done["paper_name"] == headline) & pd.Series(paper_pair, index=done.index, dtype=bool)]
        rows = at_paper if len(at_paper) else done[done["paper_name"] == headline]
        name = f"{headline}@{rows['lambda1'].iloc[0]:g},{rows['lambda2'].iloc[0]:g}"
        try:
            texts["power"] = format_power(power_from_sweep(tables.trials, tables.predictions, name, REFERENCE,
                                                           n_resamples=n_resamples, covariance=covariance),
                                          name, REFERENCE)
        except ValueError as exc:
            notes["power"] = f"{name} against {REFERENCE}: {exc}"
    return texts, notes


# --------------------------------------------------------------------------- methods and notes


def _join(values: Any) -> str:
    values = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _data_sentence(dataset: str, counts: dict[str, dict[str, int]], synthetic: bool) -> str:
    what = f"synthetic images in the {dataset.upper()} layout" if synthetic else f"the {dataset.upper()} challenge data"
    if not counts:
        return f"We used {what} (counts per split were not recorded by a finished trial)."
    parts = [f"{c['images']} {split} images ({c['melanoma']} melanoma)" for split, c in counts.items()]
    return f"We used {what}: {_join(parts)}."


def _dice_clause(grid: Any, loss: Any, regularised: bool) -> str:
    """How the attention Dice terms of Eq. 5 were weighted, for a grid with ROI models."""
    if not regularised:
        return ""
    def values(name: str, grid_values: Any, default: float) -> str:
        if not grid_values:
            return f"{name} = {default:g}"
        return f"{name} ∈ {{{', '.join(f'{v:g}' for v in grid_values)}}}"

    lambda1, lambda2 = values("λ1", grid.lambda1, loss.lambda1), values("λ2", grid.lambda2, loss.lambda2)
    return f" and, for the ROI-regularised models, the attention Dice terms of Eq. 5 with {lambda1} and {lambda2}"


def _methods(runs: list[SweepRun], interval_method: str | None) -> str:
    """A methods paragraph from the first readable spec: data, preprocessing, augmentation,
    model and weights, schedule, selection and statistics."""
    from attnmel.model_names import paper_name, split_token

    run = next((r for r in runs if r.spec is not None), None)
    if run is None:
        return ("The sweep's spec is not available (no readable sweep.json: a sweep of an older version), so no "
                "methods paragraph can be written from it.")  # fmt: skip
    spec, train = run.spec, run.spec.train
    data, model, loss, optim = train.data, train.model, train.loss, train.optim
    dataset = spec.dataset.name
    sentences = [_data_sentence(dataset, run.data.get(dataset, {}), spec.dataset.synthetic is not None)]
    sentences.append(
        f"Each image was centre-cropped to a square of side {data.crop_fraction:g}·min(H, W) and resized to "
        f"{data.image_size}×{data.image_size} pixels once; during training each batch was augmented on the device "
        f"with a random {data.crop_size}×{data.crop_size} crop, a rotation by a random multiple of 90° and random "
        "horizontal and vertical flips (the same for the image and its ROI map), then normalised by "
        + ("the training set's per-channel mean and standard deviation" if data.normalization == "train"
           else "the official code's per-dataset constants")
        + f"; evaluation used the centre {data.crop_size}×{data.crop_size} crop."
    )  # fmt: skip
    names = [paper_name(*split_token(token)) for token in spec.grid.variants]
    regularised = any(split_token(token)[1] != "none" for token in spec.grid.variants)
    weights = {"imagenet": "initialised from ImageNet weights", "none": "trained from scratch (random initialisation)"}
    sentences.append(
        f"We trained {_join(names)} ({model.backbone} backbone, {weights.get(model.weights, f'initialised from {model.weights}')})"
        f" with the {'focal loss (γ = ' + format(loss.gamma, 'g') + ')' if loss.kind == 'focal' else 'cross-entropy loss'}"
        + _dice_clause(spec.grid, loss, regularised) + "."
    )  # fmt: skip
    passes = data.resolved_passes()  # the config's, else the dataset declaration's default
    sentences.append(
        f"Optimisation: SGD with {'Nesterov ' if optim.nesterov else ''}momentum {optim.momentum:g}, learning rate "
        f"{optim.lr:g} multiplied by {optim.lr_gamma:g} every {optim.lr_step} epochs, weight decay {optim.weight_decay:g}, "
        f"batch size {optim.batch_size}, {optim.epochs} epochs of {passes} shuffled pass(es) over the training images "
        f"with each melanoma shown {data.oversample} times per pass; {len(spec.grid.seeds)} seed(s) per setting "
        f"({_join(spec.grid.seeds)})."
    )  # fmt: skip
    sentences.append("Each trial's model is the one of its first epoch with the highest validation AUC; test images "
                     "were never used for selection.")  # fmt: skip
    sentences.append(
        "Test AP and AUC are reported as mean ± sample standard deviation over seeds"
        + ("; intervals of the expected single-model metric (the mean over seeds of each trial's metric), over "
           f"seeds and test images: {interval_method}." if interval_method else ".")
    )  # fmt: skip
    return " ".join(sentences)


def _notes(page: Page) -> list[Note]:
    """What a reader of this page can and cannot conclude, from the facts on it."""
    notes: list[Note] = []
    if page.live or page.done < page.total:
        notes.append(Note(False, f"Only {page.done} of {page.total} trials have ended: every number is provisional."))
    # While the sweep runs, its INCOMPLETE trials are simply not done yet.
    unfinished = {k: v for k, v in page.excluded.items() if not (page.live and k == TrialStatus.INCOMPLETE)}
    if unfinished:
        listed = ", ".join(f"{v} {k}" for k, v in sorted(unfinished.items()))
        notes.append(Note(False, f"Trials that did not finish ({listed}) are left out of every table but the list of trials; "
                                 "if failures depend on the setting, the remaining means are biased."))  # fmt: skip
    if not page.summary.empty:
        single = page.summary[page.summary["n"] < 2]
        if len(single):
            notes.append(Note(False, f"{len(single)} setting(s) ran with a single seed: their spread over seeds is "
                                     "unknown, and differences between settings may be seed noise."))  # fmt: skip
        elif page.summary["n"].min() >= 2:
            notes.append(Note(True, f"Every setting ran with at least {int(page.summary['n'].min())} seeds: the "
                                    "± columns show how much training randomness moves a result."))  # fmt: skip
    if page.interval_note:
        notes.append(Note(False, f"No confidence intervals yet: {page.interval_note}." if page.live
                                 else f"No confidence intervals: {page.interval_note}."))  # fmt: skip
    elif "auc_low" in page.summary.columns:
        notes.append(Note(True, "Each setting's interval covers both sources of noise, the seeds and the test "
                                "images, of its expected single-model metric."))  # fmt: skip
    for run in page.runs:
        if run.spec is None:
            continue
        train = run.spec.train
        if train.model.weights == "none":
            notes.append(Note(False, f"{run.name}: trained from scratch; the paper fine-tunes ImageNet weights, so "
                                     "these numbers are not a reproduction of its regime."))  # fmt: skip
        if run.spec.dataset.synthetic is not None:
            notes.append(Note(False, f"{run.name}: synthetic data; nothing here speaks for real dermoscopy images."))
        if train.data.crop_size != _PAPER_CROP:
            notes.append(Note(False, f"{run.name}: {train.data.crop_size} px crops (the paper: {_PAPER_CROP} px): attention "
                                     "maps are coarser and accuracies not comparable with the paper's."))  # fmt: skip
    if not page.table3.empty and (page.table3["split"] == "val").any():
        notes.append(Note(False, "Table 3 was scored on validation masks (this data has no test masks); the paper "
                                 "used the test masks."))  # fmt: skip
    if not page.table3.empty and not (page.table3["dataset"] == TABLE3_DATASET).any():
        notes.append(Note(False, f"Table 3's paper column is for {TABLE3_DATASET} only."))
    regularised = page.trials[page.trials["roi"] != "none"]
    at_paper = [is_paper_lambda(a, b) for a, b in zip(regularised["lambda1"], regularised["lambda2"])]
    if len(regularised) and not any(at_paper):
        notes.append(Note(False, f"No regularised trial ran at the paper's λ1 = {PAPER_LAMBDAS[0]:g}, λ2 = "
                                 f"{PAPER_LAMBDAS[1]:g}: the paper columns stay empty for those models."))  # fmt: skip
    notes.append(Note(True, "Best epochs were chosen on validation AUC only, so the test numbers are not "
                            "optimistically selected."))  # fmt: skip
    return notes


def _claims(tables: ResultTables, *, live: bool, n_resamples: int,
            covariance: str) -> tuple[pd.DataFrame | None, str | None]:
    """The paper's claims answered (``report claims``), or why the page has none."""
    from orchestrator.results.claims import evaluate_claims

    if live:
        return None, "computed when the sweep has ended"
    if terminated(tables.trials)[0].empty:
        return None, "no trial has finished"
    try:
        return evaluate_claims(tables, n_resamples=n_resamples, covariance=covariance), None
    except ValueError as exc:
        return None, str(exc)


# --------------------------------------------------------------------------- the page


def page_model(
    path: str | Path, *, read_spec: SpecReader, live: bool = False, attention: bool = True,
    n_resamples: int = DEFAULT_RESAMPLES, tables: ResultTables | None = None, summary: Summary | None = None,
    covariance: str = DEFAULT_COVARIANCE,
) -> Page:
    """Everything the page of the sweep (or results root) at ``path`` shows.

    ``read_spec``: sweep.json's spec → the sweep's spec (see :data:`SpecReader`).
    ``live``: the sweep is still running (the page reloads itself and Fig. 3 waits for the end).
    ``attention``: draw Fig. 3 from the best checkpoints (loads models and images).
    ``tables``, ``summary``: the sweep's tables and summary when the caller has them (the end of
    ``sweep run`` prints the same summary), so no number is computed twice.
    """
    path = Path(path)
    sweep_dirs = find_sweep_dirs(path)
    tables = load_tables(path) if tables is None else tables
    runs = [_run(d, tables.trials, read_spec) for d in sweep_dirs]
    model, interval_note = _summary(tables, n_resamples, live, summary, covariance)
    summary = model.summary
    page = Page(
        title=runs[0].name if len(runs) == 1 else f"{path.name}: {len(runs)} sweeps",
        written=datetime.now(timezone.utc).replace(microsecond=0),
        live=live,
        runs=runs,
        trials=_paper_rank(tables.trials),
        summary=summary,
        excluded=model.excluded,
        interval_note=interval_note,
        table3=summarize_attention(tables.trials, tables.attention),
    )
    if not terminated(tables.trials)[0].empty or not tables.epochs.empty:
        page.figures, page.figure_notes = _figures(path, tables, live=live, attention=attention)
    else:
        page.figure_notes = {name: "no trial has finished yet" for name in ("curves", "sensitivity", "attention")}
    page.texts, page.text_notes = _statistics(tables, live=live, n_resamples=n_resamples, covariance=covariance)
    page.claims, page.claims_note = _claims(tables, live=live, n_resamples=n_resamples, covariance=covariance)
    methods = [m for m in dict.fromkeys(summary.get("ci_method", pd.Series(dtype=object))) if isinstance(m, str)]
    page.methods = _methods(runs, methods[0] if methods else None)
    page.notes = _notes(page)
    return page
