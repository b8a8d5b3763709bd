"""How far to trust a test AUC or AP: bootstrap intervals and paired tests over test images.

A sweep's ``trials`` table gives one number per trial; the per-image ``predictions`` table
(columns ``sweep, trial_id, split, image_id, label, prob``) lets us say how much of a
difference between two models the test set can resolve:

- ``bootstrap_ci``: stratified bootstrap (positives and negatives resampled separately, so
  every resample keeps the class counts), percentile interval.
- ``delong_test``: DeLong's paired test of two correlated AUCs, in the midrank form of
  Sun & Xu (IEEE SPL 2014).
- ``paired_bootstrap_test``: the same question for AP, which has no DeLong analogue.

The metrics are those of training (``attnmel.metrics``: scikit-learn's ``roc_auc_score`` and
``average_precision_score``, computed with NumPy), so an interval's estimate equals the table's
number; the resamples' values are computed a block of rows at a time
(``benchmarks/bootstrap_speed.py``: 8–100× faster than a scikit-learn call per resample).
All randomness comes from ``numpy.random.default_rng(seed)``: the same call gives the same
interval. Errors in the inputs are ``ValueError`` with one line.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from attnmel.metrics import average_precision, midranks, roc_auc, rows_ap, rows_auc


__all__ = [
    "DEFAULT_RESAMPLES",
    "METRICS",
    "METRIC_LABELS",
    "Interval",
    "PairedResult",
    "bootstrap_ci",
    "check_resampling",
    "delong_test",
    "metric_function",
    "normal_quantile",
    "paired_bootstrap_test",
    "paired_test",
    "two_sided_p",
]

log = logging.getLogger(__name__)

METRICS: dict[str, Callable[..., float]] = {"auc": roc_auc, "ap": average_precision}
_ROWS_METRICS = {"auc": rows_auc, "ap": rows_ap}
METRIC_LABELS = {"auc": "AUC", "ap": "AP"}
DEFAULT_RESAMPLES = 2000  # bootstrap resamples of every interval and paired AP test unless asked otherwise
_BLOCK = 250  # resamples whose indices are drawn at once: bounded memory for large test sets


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval and how the interval was made."""

    estimate: float
    low: float
    high: float
    method: str


@dataclass(frozen=True)
class PairedResult:
    """Model A against model B on the same images: ``delta = value_a − value_b``.

    ``se`` is the standard error of ``delta``; ``z`` is NaN for the bootstrap test.
    """

    metric: str  # "auc" | "ap"
    value_a: float
    value_b: float
    delta: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    p: float
    n_pos: int
    n_neg: int
    method: str


# --------------------------------------------------------------------------- arrays


def metric_function(metric: str) -> Callable[..., float]:
    """The function ``(labels, probs) -> float`` for ``metric`` ("auc" or "ap")."""
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(METRICS)}") from None


def _check_binary(labels: Sequence[int], *scores: Sequence[float]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels as int 0/1 and each score vector as float, after checking shapes and classes."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (melanoma = 1)")
    y = y.astype(np.int64)
    out = []
    for s in scores:
        s = np.asarray(s, dtype=np.float64)
        if s.shape != y.shape:
            raise ValueError(f"labels and probabilities differ in shape: {y.shape} vs {s.shape}")
        if not np.isfinite(s).all():
            raise ValueError("probabilities must be finite (found NaN or inf)")
        out.append(s)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"need both classes, got {n_pos} positive and {y.size - n_pos} negative images")
    return y, out


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def check_resampling(n_resamples: int, level: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer (2000 is the default), got {n_resamples!r}")
    _check_level(level)


def _index_blocks(y: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of stratified bootstrap rows: indices of the positives, then of the negatives.

    Each row redraws ``m`` positives among the positives and ``n`` negatives among the
    negatives, so no resample can lose a class, however few melanomas there are.
    """
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    for start in range(0, n_resamples, _BLOCK):
        rows = min(_BLOCK, n_resamples - start)
        yield np.concatenate(
            [pos[rng.integers(0, pos.size, (rows, pos.size))], neg[rng.integers(0, neg.size, (rows, neg.size))]],
            axis=1,
        )


def _resampled(metric: str, y: np.ndarray, scores: list[np.ndarray], n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, len(scores)) metric values; every score vector sees the same resamples.

    The metrics are computed on whole blocks of resamples at once (``attnmel.metrics.rows_auc``,
    ``rows_ap``); the tests hold them equal to scikit-learn's on every resample."""
    metric_function(metric)  # an unknown metric is a ValueError
    rows_metric = _ROWS_METRICS[metric]
    m = int(y.sum())  # rows list the positives first
    out = np.empty((n_resamples, len(scores)))
    row = 0
    for block in _index_blocks(y, n_resamples, seed):
        for k, s in enumerate(scores):
            out[row : row + len(block), k] = rows_metric(s[block], m)
        row += len(block)
    return out


def _level_text(level: float) -> str:
    return f"{level * 100:g}%"


def bootstrap_ci(
    labels: Sequence[int],
    probs: Sequence[float],
    metric: str = "auc",
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile interval of ``metric`` ("auc" or "ap") from a stratified bootstrap over images.

    The estimate is the metric on all images. Raises ``ValueError`` for unequal lengths,
    labels other than 0/1, a missing class, non-finite probabilities or a bad ``level``.
    """
    y, (p,) = _check_binary(labels, probs)
    check_resampling(n_resamples, level)
    estimate = float(metric_function(metric)(y, p))
    values = _resampled(metric, y, [p], n_resamples, seed)[:, 0]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    method = f"stratified bootstrap, {n_resamples} resamples, seed {seed}, percentile {_level_text(level)}"
    return Interval(estimate, float(low), float(high), method)


# --------------------------------------------------------------------------- paired tests


def two_sided_p(z: float) -> float:
    """2·(1 − Φ(|z|)) for a standard normal z, written as erfc(|z|/√2) so that far tails keep
    their digits instead of rounding to 0 (the standard library, not SciPy, whose import cost
    half a second at the end of every sweep)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def normal_quantile(q: float) -> float:
    """Φ⁻¹(q), the standard normal quantile, for 0 < q < 1."""
    return NormalDist().inv_cdf(q)


def delong_test(
    labels: Sequence[int], prob_a: Sequence[float], prob_b: Sequence[float], *, level: float = 0.95
) -> PairedResult:
    """DeLong's test of AUC_a = AUC_b for two models scored on the same images.

    Fast midrank form (Sun & Xu, IEEE SPL 2014) of DeLong, DeLong & Clarke-Pearson (1988).
    With m positives X and n negatives Y, and for each model the midranks T_X among the
    positives, T_Y among the negatives and T_Z in the pooled sample:

        AUC      = (Σ_i T_Z(X_i) − m(m+1)/2) / (m·n)
        V10(X_i) = (T_Z(X_i) − T_X(X_i)) / n        share of negatives below X_i (ties ½)
        V01(Y_j) = 1 − (T_Z(Y_j) − T_Y(Y_j)) / m    share of positives above Y_j (ties ½)

    S10, S01 are the 2×2 sample covariances (ddof 1) of (V10_a, V10_b) over the positives
    and of (V01_a, V01_b) over the negatives, and

        var(Δ) = (S10_aa + S10_bb − 2·S10_ab)/m + (S01_aa + S01_bb − 2·S01_ab)/n
        z = Δ/√var,  p = 2·(1 − Φ(|z|)),  CI = Δ ± Φ⁻¹((1+level)/2)·√var.

    var(Δ) = 0 (e.g. identical rankings) gives z = 0 and p = 1 when Δ = 0, else z = ±inf, p = 0.
    """
    y, (a, b) = _check_binary(labels, prob_a, prob_b)
    _check_level(level)
    pos, neg = np.stack([a[y == 1], b[y == 1]]), np.stack([a[y == 0], b[y == 0]])  # (2, m), (2, n)
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's variance needs at least 2 positive and 2 negative images, got {m} and {n}")
    t_x, t_y = midranks(pos), midranks(neg)
    t_z = midranks(np.concatenate([pos, neg], axis=1))
    aucs = (t_z[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10 = (t_z[:, :m] - t_x) / n
    v01 = 1.0 - (t_z[:, m:] - t_y) / m
    s10, s01 = np.cov(v10), np.cov(v01)
    # Rounding can leave a hair below zero where the two rankings nearly coincide.
    var = max((s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n, 0.0)
    delta, se = float(aucs[0] - aucs[1]), math.sqrt(var)
    if se > 0:
        z = delta / se
        p = two_sided_p(z)
    else:
        z, p = (0.0, 1.0) if delta == 0 else (math.copysign(math.inf, delta), 0.0)
    half = normal_quantile((1 + level) / 2) * se
    method = f"DeLong test (Sun & Xu midranks), {_level_text(level)} CI by normal approximation"
    return PairedResult("auc", float(aucs[0]), float(aucs[1]), delta, se, delta - half, delta + half,
                        z, p, m, n, method)  # fmt: skip


def paired_bootstrap_test(
    labels: Sequence[int],
    prob_a: Sequence[float],
    prob_b: Sequence[float],
    metric: str = "ap",
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedResult:
    """Paired stratified bootstrap of Δ = metric_a − metric_b (both models see each resample).

    CI: percentile interval of the resampled Δ*. p (two-sided): 2·min(P(Δ* ≤ 0), P(Δ* ≥ 0)),
    each share counted as (k + 1)/(B + 1) so that B resamples never claim p below 2/(B + 1);
    clipped to 1. ``se`` is the standard deviation of Δ*; ``z`` is NaN.
    """
    y, (a, b) = _check_binary(labels, prob_a, prob_b)
    check_resampling(n_resamples, level)
    fn = metric_function(metric)
    value_a, value_b = float(fn(y, a)), float(fn(y, b))
    values = _resampled(metric, y, [a, b], n_resamples, seed)
    d = values[:, 0] - values[:, 1]
    low, high = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    below, above = (np.sum(d <= 0) + 1) / (n_resamples + 1), (np.sum(d >= 0) + 1) / (n_resamples + 1)
    p = min(1.0, 2 * min(below, above))
    se = float(d.std(ddof=1)) if n_resamples > 1 else math.nan
    n_pos = int(y.sum())
    method = (
        f"paired stratified bootstrap, {n_resamples} resamples, seed {seed}, percentile {_level_text(level)} CI, "
        f"p = 2·min(P(Δ*≤0), P(Δ*≥0)) ≥ 2/{n_resamples + 1}"
    )
    return PairedResult(metric, value_a, value_b, value_a - value_b, se, float(low), float(high),
                        math.nan, float(p), n_pos, y.size - n_pos, method)  # fmt: skip


def paired_test(metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int,
                level: float) -> PairedResult:  # fmt: skip
    """The paired test of ``metric``: DeLong for AUC, the paired bootstrap for AP."""
    if metric == "auc":
        return delong_test(y, a, b, level=level)
    return paired_bootstrap_test(y, a, b, metric, n_resamples=n_resamples, seed=seed, level=level)
