"""How far to trust a test AUC or AP: intervals over training randomness and test images,
paired tests, multiplicity control.

A sweep's ``trials`` table gives one number per trial; the per-image ``predictions`` table
(columns ``sweep, trial_id, split, image_id, label, prob``) lets us say how much of a
difference the seeds and the test set can resolve:

- ``setting_interval`` / ``setting_difference``: a setting's number is the expected
  single-model metric, the mean over its seeds of each trial's metric; its interval, and the
  paired test of two settings, are the Obuchowski–Rockette analysis with Hillis's degrees of
  freedom (``orchestrator.results.orh``: seeds as readers, test images as cases), with the
  test-set error covariances from the stratified image bootstrap (default), the jackknife or
  DeLong.
- ``bootstrap_ci``: one trial's stratified bootstrap interval over test images (positives and
  negatives resampled separately, so every resample keeps the class counts), percentile.
- ``delong_test``: DeLong's paired test of two correlated AUCs (one trained model each), in
  the midrank form of Sun & Xu (IEEE SPL 2014); ``paired_bootstrap_test`` for AP.
- ``holm`` and ``benjamini_hochberg``: adjusted p-values over a family of comparisons.

Why these components and not a bootstrap over seeds: with K seeds of metrics x_k on one test
set, x_k = μ + a_k + e_k with seed effects a_k (variance σ²) and test-set errors e_k (variance
v, covariance c between two seeds: the same images). Then Var(mean) = (σ² + v − c)/K + c, and
the sample variance s² of the x_k estimates σ² + v − c, so SE² = s²/K + ĉ, the single-modality
case of Obuchowski–Rockette–Hillis, with ĉ clipped at 0. A percentile bootstrap over 3 seeds
sees (K − 1)/K of s² and only 10 distinct seed multisets (``benchmarks/interval_coverage.py``).

The metrics are those of training (``attnmel.metrics``: scikit-learn's ``roc_auc_score`` and
``average_precision_score``, computed with NumPy), so an interval's estimate equals the table's
number. A resample is a row of per-image counts, and a block of rows is scored at once
(``attnmel.metrics.resampled_auc``, ``resampled_ap``; ``benchmarks/bootstrap_speed.py``). All
randomness comes from ``numpy.random.default_rng(seed)``: the same call gives the same
interval, and every setting scored on the same images sees the same resamples. Errors in the
inputs are ``ValueError`` with one line.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from attnmel.metrics import average_precision, midranks, resampled_ap, resampled_auc, roc_auc
from orchestrator.results.distributions import normal_quantile, t_quantile, t_two_sided_p, two_sided_p
from orchestrator.results.orh import (
    DEFAULT_COVARIANCE, MIN_RESAMPLES, covariance_text, error_covariance, or_components, orh_difference, orh_setting,
    t_interval,
)


__all__ = [
    "DEFAULT_RESAMPLES",
    "METRICS",
    "METRIC_LABELS",
    "Interval",
    "PairedResult",
    "SeedImageEstimate",
    "benjamini_hochberg",
    "bootstrap_ci",
    "check_resampling",
    "delong_covariance",
    "delong_test",
    "hanley_mcneil_variance",
    "holm",
    "metric_function",
    "normal_quantile",
    "paired_bootstrap_test",
    "paired_test",
    "resampled_metric",
    "setting_difference",
    "setting_interval",
    "stratified_counts",
    "t_quantile",
    "t_two_sided_p",
    "two_sided_p",
]

log = logging.getLogger(__name__)

METRICS: dict[str, Callable[..., float]] = {"auc": roc_auc, "ap": average_precision}
_RESAMPLED = {"auc": resampled_auc, "ap": resampled_ap}
METRIC_LABELS = {"auc": "AUC", "ap": "AP"}
DEFAULT_RESAMPLES = 2000  # bootstrap resamples of every interval and paired AP test unless asked otherwise
_BLOCK = 250  # resamples drawn at once: bounded memory for large test sets


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


@dataclass(frozen=True)
class SeedImageEstimate:
    """An expected single-model metric (or a difference of two) over seeds and test images.

    ``estimate`` is the mean over seeds of each trial's metric (for a difference: of A's minus
    B's); ``se``² = ``seed_var`` + ``image_var``: the seed-to-seed part (s²/K; NaN where a side
    has one seed, so training randomness is not in the interval) and the test-set part the
    seeds share. ``df``: Satterthwaite's degrees of freedom of the t interval (inf when the
    seed part is 0 or missing). ``p`` tests estimate = 0 (differences; NaN for one setting).
    ``covers`` says in words what the interval includes.
    """

    metric: str
    estimate: float
    se: float
    low: float
    high: float
    df: float
    t: float
    p: float
    seed_var: float
    image_var: float
    n_seeds: tuple[int, ...]
    paired: bool
    covers: str
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
    if n_pos < 2 or y.size - n_pos < 2:
        raise ValueError(f"need both classes, at least 2 images of each: got {n_pos} melanoma and {y.size - n_pos} other")
    return y, out


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def check_resampling(n_resamples: int, level: float) -> None:
    """A ``ValueError`` unless ``n_resamples`` ≥ :data:`orh.MIN_RESAMPLES` and 0 < ``level`` < 1."""
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < MIN_RESAMPLES:
        raise ValueError(f"n_resamples must be an integer of at least {MIN_RESAMPLES} (2000 is the default), "
                         f"got {n_resamples!r}")
    _check_level(level)


def stratified_counts(labels: Sequence[int], n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of stratified bootstrap resamples as counts: (rows, N) ints, how often each image
    is drawn.

    Each row redraws m positives among the m positives and n negatives among the n negatives
    (uniformly, with replacement), so no resample can lose a class, however few melanomas
    there are. The same ``labels``, ``n_resamples`` and ``seed`` give the same blocks.
    """
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    for start in range(0, n_resamples, _BLOCK):
        rows = min(_BLOCK, n_resamples - start)
        counts = np.zeros((rows, y.size), dtype=np.int32)
        for members in (pos, neg):
            drawn = rng.integers(0, members.size, (rows, members.size))
            flat = (drawn + members.size * np.arange(rows)[:, None]).ravel()
            counts[:, members] = np.bincount(flat, minlength=rows * members.size).reshape(rows, members.size)
        yield counts


@functools.lru_cache(maxsize=4)
def _all_counts(labels: bytes, n_resamples: int, seed: int) -> np.ndarray:
    """Every block of :func:`stratified_counts` at once, kept for the next setting scored on the
    same images (a sweep's settings share the test split, so they share the resamples)."""
    counts = np.concatenate(list(stratified_counts(np.frombuffer(labels, dtype=np.int64), n_resamples, seed)))
    counts.flags.writeable = False
    return counts


def resampled_metric(
    metric: str, labels: Sequence[int], scores: Sequence[Sequence[float]] | np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """(n_resamples, K) values of ``metric`` of K score vectors (rows of ``scores``, each over
    the N images of ``labels``) on stratified bootstrap resamples; every vector sees the same
    resamples, so the columns keep the pairing on images.

    The tests hold every value equal to scikit-learn's on the materialised resample."""
    metric_function(metric)  # an unknown metric is a ValueError
    rows_metric = _RESAMPLED[metric]
    y, vectors = _check_binary(labels, *np.atleast_2d(np.asarray(scores, dtype=np.float64)))
    out = np.empty((n_resamples, len(vectors)))
    counts = _all_counts(y.tobytes(), n_resamples, seed)
    for start in range(0, n_resamples, _BLOCK):  # bounded temporaries for large test sets
        block = counts[start : start + _BLOCK]
        for k, s in enumerate(vectors):
            out[start : start + len(block), k] = rows_metric(y, s, block)
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
    values = resampled_metric(metric, y, p[None], n_resamples, seed)[:, 0]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    method = f"stratified bootstrap, {n_resamples} resamples, seed {seed}, percentile {_level_text(level)}"
    return Interval(estimate, float(low), float(high), method)


# --------------------------------------------------------------------------- paired tests


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


def delong_covariance(labels: Sequence[int], probs: Sequence[Sequence[float]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of J models scored on the same images and DeLong's (J, J) covariance matrix of them
    over test-set sampling: S10/m + S01/n from the structural components V10, V01 of
    :func:`delong_test` (whose variance of Δ is a′·C·a for a = (1, −1))."""
    y, _ = _check_binary(labels)
    matrix = _probs_matrix(probs, y.size, "delong_covariance")
    for row in matrix:
        _check_binary(y, row)
    pos, neg = matrix[:, y == 1], matrix[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's variance needs at least 2 positive and 2 negative images, got {m} and {n}")
    t_x, t_y = midranks(pos), midranks(neg)
    t_z = midranks(np.concatenate([pos, neg], axis=1))
    aucs = (t_z[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v10, v01 = (t_z[:, :m] - t_x) / n, 1.0 - (t_z[:, m:] - t_y) / m
    return aucs, np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


def hanley_mcneil_variance(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil's (Radiology 1982) variance of one AUC over test-set sampling, from the
    AUC and the class counts alone: [A(1−A) + (m−1)(Q1−A²) + (n−1)(Q2−A²)] / (m·n), with
    Q1 = A/(2−A), Q2 = 2A²/(1+A). For planning where no per-image scores exist (a paper's table):
    exact under the negative-exponential model it was derived for, larger than the spread of
    binormal AUCs (by ~45 % at AUC 0.82, 60/240 images), so plans from it err on the safe side."""
    if not 0.0 < auc < 1.0 or n_pos < 1 or n_neg < 1:
        raise ValueError(f"need 0 < AUC < 1 and both classes, got AUC {auc!r}, {n_pos} positive, {n_neg} negative")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)


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
    values = resampled_metric(metric, y, np.stack([a, b]), n_resamples, seed)
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


# --------------------------------------------------------------------------- seeds and images


def _probs_matrix(probs: Sequence[Sequence[float]] | np.ndarray, n: int, what: str) -> np.ndarray:
    matrix = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    if matrix.ndim != 2 or matrix.shape[1] != n or matrix.shape[0] < 1:
        raise ValueError(f"{what}: expected (seeds, {n} images) probabilities, got shape {matrix.shape}")
    return matrix


NOT_ESTIMABLE_TEXT = ("not estimable: the seeds' metrics agree exactly and share no test-set covariance, so "
                      "the data give no variance (run more seeds)")


def _covers(n_seeds: tuple[int, ...], se: float = 0.0) -> str:
    if math.isnan(se):
        return NOT_ESTIMABLE_TEXT
    single = [k for k in n_seeds if k < 2]
    if not single:
        return "seeds and test images"
    if len(single) == len(n_seeds):
        return "test images only (one seed: training randomness is not in it)"
    return "test images and the seeds of the side with several (one side has one seed)"


def _method(level: float, covariance: str, n_resamples: int, seed: int, what: str) -> str:
    return (
        f"{what}; {_level_text(level)} t interval, Obuchowski–Rockette–Hillis: SE² = seed-to-seed mean square / "
        f"seeds + the test-set covariance the seeds share (clipped at 0; "
        f"{covariance_text(covariance, n_resamples, seed)}), Hillis df"
    )


def _theta_and_cov(metric: str, y: np.ndarray, matrix: np.ndarray, covariance: str, n_resamples: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``metric`` and their (J, J) error covariance over the test images."""
    fn = metric_function(metric)
    observed = np.array([fn(y, row) for row in matrix])
    boot = resampled_metric(metric, y, matrix, n_resamples, seed) if covariance == "bootstrap" else None
    return observed, error_covariance(metric, y, matrix, covariance, bootstrap=boot)


def _checked(labels: Sequence[int], *matrices: tuple[Sequence[Sequence[float]] | np.ndarray, str],
             n_resamples: int, level: float, covariance: str) -> tuple[np.ndarray, list[np.ndarray]]:
    y, _ = _check_binary(labels)
    check_resampling(n_resamples, level)
    covariance_text(covariance, n_resamples, 0)  # an unknown method is a ValueError
    out = [_probs_matrix(m, y.size, what) for m, what in matrices]
    for matrix in out:
        for row in matrix:
            _check_binary(y, row)
    return y, out


def setting_interval(
    labels: Sequence[int],
    probs: Sequence[Sequence[float]] | np.ndarray,
    metric: str = "auc",
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    covariance: str = DEFAULT_COVARIANCE,
) -> SeedImageEstimate:
    """Expected single-model ``metric`` of one setting: ``probs`` is (seeds, images), each row
    one trial's probabilities on the same images.

    estimate = mean over seeds of each trial's metric; the interval is Obuchowski–Rockette–
    Hillis's for one modality (``orh.orh_setting``): SE² = MS(R)/K + max(Cov2, 0), with MS(R)
    the seeds' sample variance and Cov2 the test-set covariance two seeds' models share
    (``covariance``: bootstrap, jackknife or DeLong), on Hillis's df. With one seed, SE² is that
    trial's test-set variance: the interval covers test sampling only. Clipped to [0, 1].
    """
    y, (matrix,) = _checked(labels, (probs, "setting_interval"), n_resamples=n_resamples, level=level,
                            covariance=covariance)
    observed, cov = _theta_and_cov(metric, y, matrix, covariance, n_resamples, seed)
    est = orh_setting(observed, cov, level=level)
    k = observed.size
    if k > 1:
        c = or_components(observed[None, :], cov)
        seed_var, image_var = c.ms_r / k, max(c.cov2, 0.0)
    else:
        seed_var, image_var = math.nan, float(cov[0, 0])
    method = _method(level, covariance, n_resamples, seed, "mean over seeds of each trial's metric on these images, "
                     "the training split fixed")
    return SeedImageEstimate(metric, est.estimate, est.se, max(est.low, 0.0), min(est.high, 1.0), est.df,
                             math.nan, math.nan, seed_var, image_var, (k,), False, _covers((k,), est.se), method)


def setting_difference(
    labels: Sequence[int],
    probs_a: Sequence[Sequence[float]] | np.ndarray,
    probs_b: Sequence[Sequence[float]] | np.ndarray,
    metric: str = "auc",
    *,
    paired: bool,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    covariance: str = DEFAULT_COVARIANCE,
) -> SeedImageEstimate:
    """Δ of the expected single-model ``metric``, setting A − setting B, on the same images.

    ``paired``: row k of A and row k of B share a seed (the grid ran both with it): the
    two-modality Obuchowski–Rockette–Hillis analysis (``orh.orh_difference``), SE² =
    2·[MS(T×R) + K·max(Cov2 − Cov3, 0)]/K = s²_Δ/K + 2·max(Cov2 − Cov3, 0) on Hillis's df.
    Otherwise the sides' seeds are independent: the seed part is s²_A/K_A + s²_B/K_B (a side
    with one seed adds none: say so) and the test-set part max(c_A + c_B − 2·Cov3, 0), c a
    side's Cov2 (its variance with one seed), on Satterthwaite's df. The image resamples are
    shared by A and B: the pairing on images is kept either way. ``p`` tests Δ = 0 against the t
    distribution; CI clipped to [−1, 1].
    """
    y, (a, b) = _checked(labels, (probs_a, "setting_difference (A)"), (probs_b, "setting_difference (B)"),
                         n_resamples=n_resamples, level=level, covariance=covariance)
    ka, kb = a.shape[0], b.shape[0]
    if paired and ka != kb:
        raise ValueError(f"paired seeds need as many trials on each side, got {ka} and {kb}")
    observed, cov = _theta_and_cov(metric, y, np.concatenate([a, b]), covariance, n_resamples, seed)
    obs_a, obs_b = observed[:ka], observed[ka:]
    if paired:
        est = orh_difference(observed.reshape(2, ka), cov, level=level)
        if ka > 1:
            c = or_components(observed.reshape(2, ka), cov)
            seed_var, image_var = 2 * c.ms_tr / ka, 2 * max(c.cov2 - c.cov3, 0.0)
        else:
            seed_var, image_var = math.nan, est.se**2
        what = f"mean over {ka} paired seeds of Δ = A − B"
    else:
        sides = [(obs_a, cov[:ka, :ka]), (obs_b, cov[ka:, ka:])]
        parts = [(float(o.var(ddof=1)) / o.size, o.size - 1.0) for o, _ in sides if o.size > 1]
        shared = [float(or_components(o[None, :], c).cov2) if o.size > 1 else float(c[0, 0]) for o, c in sides]
        image_var = max(shared[0] + shared[1] - 2 * float(cov[:ka, ka:].mean()), 0.0)
        seed_var = float(sum(part for part, _ in parts)) if parts else math.nan
        var = (0.0 if math.isnan(seed_var) else seed_var) + image_var
        denominator = sum(part**2 / dof for part, dof in parts)
        df = var**2 / denominator if denominator > 0 else math.inf
        est = t_interval(float(obs_a.mean() - obs_b.mean()), math.sqrt(var), df, level)
        what = f"mean over A's {ka} seed(s) − mean over B's {kb} (seeds unpaired)"
    method = _method(level, covariance, n_resamples, seed, what)
    return SeedImageEstimate(metric, float(est.estimate), float(est.se), max(est.low, -1.0), min(est.high, 1.0),
                             float(est.df), float(est.t), float(est.p), seed_var, float(image_var), (ka, kb),
                             paired, _covers((ka, kb), float(est.se)), method)


# --------------------------------------------------------------------------- multiplicity


def _finite_order(p: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(p, dtype=np.float64)
    if ((values < 0) | (values > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    finite = np.flatnonzero(~np.isnan(values))
    return values, finite[np.argsort(values[finite], kind="stable")]


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error): p_(i)·(m − i + 1), made
    non-decreasing, capped at 1; m counts the non-missing p (NaN stays NaN)."""
    values, order = _finite_order(p)
    out = np.full(values.shape, np.nan)
    m = order.size
    if m:
        out[order] = np.minimum(np.maximum.accumulate(values[order] * (m - np.arange(m))), 1.0)
    return out


def benjamini_hochberg(p: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg q-values (false discovery rate): p_(i)·m/i, made non-decreasing from
    the largest down, capped at 1; m counts the non-missing p (NaN stays NaN)."""
    values, order = _finite_order(p)
    out = np.full(values.shape, np.nan)
    m = order.size
    if m:
        scaled = values[order] * m / np.arange(1, m + 1)
        out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out
