"""How far to trust a test AUC or AP: intervals over training randomness and test images,
paired tests, multiplicity control.

A sweep's ``trials`` table gives one number per trial; the per-image ``predictions`` table
(columns ``sweep, trial_id, split, image_id, label, prob``) lets us say how much of a
difference the seeds and the test set can resolve:

- ``setting_interval`` / ``setting_difference``: a setting's number is the expected
  single-model metric, the mean over its seeds of each trial's metric; its standard error
  combines the seed-to-seed variance and the test-set covariance the seeds share (below), with
  a Student t interval on Satterthwaite's degrees of freedom.
- ``bootstrap_ci``: one trial's stratified bootstrap interval over test images (positives and
  negatives resampled separately, so every resample keeps the class counts), percentile.
- ``delong_test``: DeLong's paired test of two correlated AUCs (one trained model each), in
  the midrank form of Sun & Xu (IEEE SPL 2014); ``paired_bootstrap_test`` for AP.
- ``holm`` and ``benjamini_hochberg``: adjusted p-values over a family of comparisons.

Why the components and not a bootstrap over seeds: with K seeds of metrics x_k on one test
set, x_k = μ + a_k + e_k with seed effects a_k (variance σ²) and test-set errors e_k (variance
v, covariance c between two seeds: the same images). Then Var(mean) = (σ² + v − c)/K + c, and
the sample variance s² of the x_k estimates σ² + v − c, so SE² = s²/K + ĉ with ĉ the mean
off-diagonal covariance of the seeds' metrics over stratified image resamples. Since σ² ≥ 0, s²
is floored at v̂ − ĉ (v̂: the resamples' mean per-seed variance): with 2 or 3 seeds s² can land
far below the test-set noise each model carries on its own, and the floor keeps the interval
from claiming a precision the test set does not have. A percentile
bootstrap over 3 seeds sees (K − 1)/K of s² and 10 distinct seed multisets; in the coverage
simulation (``benchmarks/interval_coverage.py``, 200 replicates) it covers 83.5 % at 600 images
and 3 seeds and 91.5 % at 5, this interval 89.5 % and 94.0 %.

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
from statistics import NormalDist

import numpy as np

from attnmel.metrics import average_precision, midranks, resampled_ap, resampled_auc, roc_auc


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
    "seed_and_shared_variance",
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


def t_quantile(df: float, q: float) -> float:
    """Student t quantile with ``df`` degrees of freedom (inf: the normal quantile)."""
    if math.isinf(df):
        return normal_quantile(q)
    from scipy.special import stdtrit  # imported here: SciPy costs ~0.3 s, and only intervals need it

    return float(stdtrit(df, q))


def t_two_sided_p(t: float, df: float) -> float:
    """2·P(T > |t|) for Student's T with ``df`` degrees of freedom (inf: the normal tail)."""
    if math.isinf(df):
        return two_sided_p(t)
    if math.isinf(t):
        return 0.0
    from scipy.special import stdtr

    return float(2 * stdtr(df, -abs(t)))


def seed_and_shared_variance(observed: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    """(s², ĉ) of K ≥ 2 per-seed metrics (or per-seed Δ) ``observed`` on one test set, whose
    test-set covariance is ``cov`` (K, K; image bootstrap or DeLong): s² their seed-to-seed
    sample variance floored at v̂ − ĉ, the test-set noise each carries alone (σ² ≥ 0, module
    docstring), and ĉ the mean off-diagonal covariance the seeds share (not clipped). Var of
    their mean with K seeds is then s²/K + ĉ; intervals and power plans both use this."""
    k = observed.size
    if k < 2 or cov.shape != (k, k):
        raise ValueError(f"need K >= 2 per-seed values and a (K, K) covariance, got {k} and {cov.shape}")
    shared = float((cov.sum() - np.trace(cov)) / (k * (k - 1)))
    return max(float(observed.var(ddof=1)), float(np.trace(cov)) / k - shared), shared


def _components(observed: np.ndarray, boot: np.ndarray) -> tuple[list[tuple[float, float]], float]:
    """The seed part [(s²/K, dof)] and the shared test-set part ĉ of one side's mean: ``observed``
    (K,) metrics (or per-seed Δ), ``boot`` (B, K) their values on the image resamples. With one
    seed: no seed part, and the test-set part is that trial's bootstrap variance."""
    k = observed.size
    if k == 1:
        return [], float(boot[:, 0].var(ddof=1))
    s2, shared = seed_and_shared_variance(observed, np.cov(boot, rowvar=False))
    # The floor raises the part, not its degrees of freedom: it too rests on K seeds' worth of
    # evidence about σ², so the t quantile stays that of K − 1.
    return [(s2 / k, k - 1.0)], shared


def _probs_matrix(probs: Sequence[Sequence[float]] | np.ndarray, n: int, what: str) -> np.ndarray:
    matrix = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    if matrix.ndim != 2 or matrix.shape[1] != n or matrix.shape[0] < 1:
        raise ValueError(f"{what}: expected (seeds, {n} images) probabilities, got shape {matrix.shape}")
    return matrix


def _estimate(metric: str, estimate: float, seed_parts: list[tuple[float, int]], image_var: float,
              n_seeds: tuple[int, ...], paired: bool, level: float, bounds: tuple[float, float],
              method: str, test: bool) -> SeedImageEstimate:  # fmt: skip
    """The interval (and test of 0) from the two variance parts. ``seed_parts``: (s²/K, its
    degrees of freedom K − 1) per side with K ≥ 2;
    Satterthwaite: df = (Σ s²/K + image part)² / Σ (s²/K)²/dof."""
    seed_var = float(sum(part for part, _ in seed_parts)) if seed_parts else math.nan
    var = (0.0 if math.isnan(seed_var) else seed_var) + max(image_var, 0.0)
    denominator = sum(part**2 / dof for part, dof in seed_parts)
    df = var**2 / denominator if denominator > 0 else math.inf
    se = math.sqrt(var)
    half = t_quantile(df, (1 + level) / 2) * se
    low, high = max(estimate - half, bounds[0]), min(estimate + half, bounds[1])
    t, p = math.nan, math.nan
    if test:
        if se > 0:
            t = estimate / se
            p = t_two_sided_p(t, df)
        else:
            t, p = (0.0, 1.0) if estimate == 0 else (math.copysign(math.inf, estimate), 0.0)
    single = [k for k in n_seeds if k < 2]
    if not single:
        covers = "seeds and test images"
    elif len(single) == len(n_seeds):
        covers = "test images only (one seed: training randomness is not in it)"
    else:
        covers = "test images and the seeds of the side with several (one side has one seed)"
    return SeedImageEstimate(metric, float(estimate), se, float(low), float(high), float(df), float(t), float(p),
                             seed_var, float(image_var), n_seeds, paired, covers, method)  # fmt: skip


def _method(level: float, n_resamples: int, seed: int, what: str) -> str:
    return (f"{what}; {_level_text(level)} t interval, SE² = seed-to-seed variance (at least the test-set noise "
            "each model carries alone) / seeds + the test-set covariance the seeds share (stratified image bootstrap, "
            f"{n_resamples} resamples, seed {seed}), Satterthwaite df")  # fmt: skip


def setting_interval(
    labels: Sequence[int],
    probs: Sequence[Sequence[float]] | np.ndarray,
    metric: str = "auc",
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> SeedImageEstimate:
    """Expected single-model ``metric`` of one setting: ``probs`` is (seeds, images), each row
    one trial's probabilities on the same images.

    estimate = mean over seeds of each trial's metric; SE² = s²/K + ĉ (module docstring); with
    one seed, SE² is that trial's bootstrap variance: the interval covers test sampling only.
    The interval is clipped to [0, 1].
    """
    y, _ = _check_binary(labels)
    check_resampling(n_resamples, level)
    matrix = _probs_matrix(probs, y.size, "setting_interval")
    k = matrix.shape[0]
    for row in matrix:
        _check_binary(y, row)
    fn = metric_function(metric)
    observed = np.array([fn(y, row) for row in matrix])
    seed_parts, image_var = _components(observed, resampled_metric(metric, y, matrix, n_resamples, seed))
    method = _method(level, n_resamples, seed, "mean over seeds of each trial's metric")
    return _estimate(metric, float(observed.mean()), seed_parts, image_var, (k,), False, level, (0.0, 1.0),
                     method, test=False)  # fmt: skip


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
) -> SeedImageEstimate:
    """Δ of the expected single-model ``metric``, setting A − setting B, on the same images.

    ``paired``: row k of A and row k of B share a seed (the grid ran both with it), so the
    per-seed differences Δ_k carry the seed part (s²_Δ/K) and their bootstrap covariances the
    test-set part. Otherwise the sides' seeds are independent: the seed part is
    s²_A/K_A + s²_B/K_B (a side with one seed adds none: say so) and the test-set part
    c_AA + c_BB − 2·c_AB from the bootstrap covariances (c_jj: a side's shared covariance, its
    variance with one seed). The image resamples are shared by A and B: the pairing on images
    is kept either way. ``p`` tests Δ = 0 against the t distribution; CI clipped to [−1, 1].
    """
    y, _ = _check_binary(labels)
    check_resampling(n_resamples, level)
    a = _probs_matrix(probs_a, y.size, "setting_difference (A)")
    b = _probs_matrix(probs_b, y.size, "setting_difference (B)")
    for row in (*a, *b):
        _check_binary(y, row)
    ka, kb = a.shape[0], b.shape[0]
    if paired and ka != kb:
        raise ValueError(f"paired seeds need as many trials on each side, got {ka} and {kb}")
    fn = metric_function(metric)
    obs_a, obs_b = np.array([fn(y, r) for r in a]), np.array([fn(y, r) for r in b])
    boot = resampled_metric(metric, y, np.concatenate([a, b]), n_resamples, seed)
    boot_a, boot_b = boot[:, :ka], boot[:, ka:]
    estimate = float(obs_a.mean() - obs_b.mean())
    if paired:
        seed_parts, image_var = _components(obs_a - obs_b, boot_a - boot_b)
        what = f"mean over {ka} paired seeds of Δ = A − B"
    else:
        (parts_a, shared_a), (parts_b, shared_b) = _components(obs_a, boot_a), _components(obs_b, boot_b)
        seed_parts = parts_a + parts_b
        image_var = shared_a + shared_b - 2 * float(np.cov(boot, rowvar=False)[:ka, ka:].mean())
        what = f"mean over A's {ka} seed(s) − mean over B's {kb} (seeds unpaired)"
    method = _method(level, n_resamples, seed, what)
    return _estimate(metric, estimate, seed_parts, image_var, (ka, kb), paired, level, (-1.0, 1.0), method,
                     test=True)  # fmt: skip


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
