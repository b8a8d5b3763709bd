"""The Obuchowski–Rockette analysis with Hillis's degrees of freedom (ORH) of a sweep.

A sweep is a multi-reader multi-case design: its settings are the modalities (treatments), its
seeds the readers (every setting is trained with the same seeds, as every reader reads every
case in each modality) and its test images the cases. The figure of merit θ_ij (AUC or AP) of
setting i trained with seed j is modelled (Obuchowski & Rockette 1995) as

    θ_ij = μ + τ_i + R_j + (τR)_ij + ε_ij,

random seed effects R_j and (τR)_ij, and errors ε_ij from the test images whose covariances
are Var (one model), Cov1 (same seed, other setting), Cov2 (other seed, same setting) and Cov3
(other seed and setting). They are estimated from the per-image predictions by the stratified
image bootstrap, the jackknife over images or DeLong's structural components
(:func:`error_covariance`); the mean squares come from the θ_ij themselves. Hillis (2007)
gives the test of equal settings and its denominator degrees of freedom:

    F = MS(T) / [MS(T×R) + r·max(Cov2 − Cov3, 0)],
    ddf = [MS(T×R) + r·max(Cov2 − Cov3, 0)]² / {MS(T×R)² / [(t − 1)(r − 1)]},

a difference of two settings' means has SE √{2·[MS(T×R) + r·max(Cov2 − Cov3, 0)] / r} on ddf,
and one setting alone SE √{[MS(R) + r·max(Cov2, 0)] / r} on [MS(R) + r·max(Cov2, 0)]² /
[MS(R)² / (r − 1)] degrees of freedom. With the jackknife these numbers equal those of the
OR-DBM MRMC software on the Van Dyke data set (``tests/orchestrator/results/test_orh.py``).

The estimand is the expected single-model metric: the mean over seeds of each trained model's
metric on the test images, the training split fixed; an interval covers both the training
randomness (seeds) and the test-set sampling (images).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attnmel.metrics import midranks, resampled_ap
from orchestrator.results.distributions import f_survival, t_quantile, t_two_sided_p

__all__ = [
    "COVARIANCES",
    "DEFAULT_COVARIANCE",
    "MIN_RESAMPLES",
    "ORComponents",
    "ORHTest",
    "SettingEstimate",
    "covariance_text",
    "error_covariance",
    "jackknife_covariance",
    "or_components",
    "orh_contrasts",
    "orh_difference",
    "orh_pairwise",
    "orh_setting",
    "orh_test",
    "t_interval",
]

# How the error covariances of the figures of merit are estimated over the test images.
COVARIANCES = ("bootstrap", "jackknife", "delong")
DEFAULT_COVARIANCE = "bootstrap"
# Fewer resamples than this estimate a covariance too roughly to base an interval on.
MIN_RESAMPLES = 200
_JACKKNIFE_BLOCK = 256  # leave-one-out rows scored at once (bounded memory for large test sets)


def covariance_text(method: str, n_resamples: int, seed: int) -> str:
    """How the error covariances were estimated, in words (for the tables' method sentences)."""
    if method == "bootstrap":
        return f"stratified image bootstrap, {n_resamples} resamples, seed {seed}"
    if method == "jackknife":
        return "jackknife over test images"
    if method == "delong":
        return "DeLong's structural components"
    raise ValueError(f"unknown covariance method {method!r}; choose one of: {', '.join(COVARIANCES)}")


def _two_classes(y: np.ndarray, what: str) -> tuple[int, int]:
    m = int(y.sum())
    n = int(y.size - m)
    if m < 2 or n < 2:
        raise ValueError(
            f"{what} needs at least 2 melanoma and 2 non-melanoma images, got {m} and {n}"
        )
    return m, n


def _auc_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs (J,) and DeLong's structural components V10 (J, m), V01 (J, n) of J score vectors."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    t_x, t_y = midranks(pos), midranks(neg)
    t_z = midranks(np.concatenate([pos, neg], axis=1))
    aucs = (t_z[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    return aucs, (t_z[:, :m] - t_x) / n, 1.0 - (t_z[:, m:] - t_y) / m


def _leave_one_out(metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(N, J): the metric of each of J score vectors with image i left out, for each image i."""
    n_images = y.size
    if metric == "auc":
        aucs, v10, v01 = _auc_components(y, scores)
        m, n = v10.shape[1], v01.shape[1]
        out = np.empty((n_images, scores.shape[0]))
        # The Mann–Whitney AUC without positive i loses i's row of wins, without negative j its column.
        out[y == 1] = ((m * aucs[:, None] - v10) / (m - 1)).T
        out[y == 0] = ((n * aucs[:, None] - v01) / (n - 1)).T
        return out
    out = np.empty((n_images, scores.shape[0]))
    for start in range(0, n_images, _JACKKNIFE_BLOCK):
        rows = np.arange(start, min(start + _JACKKNIFE_BLOCK, n_images))
        counts = np.ones((rows.size, n_images), dtype=np.int32)
        counts[np.arange(rows.size), rows] = 0
        for j, s in enumerate(scores):
            out[rows, j] = resampled_ap(y, s, counts)
    return out


def jackknife_covariance(metric: str, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(J, J) jackknife covariance over images of J models' ``metric``: (N − 1)/N · Σ_i
    (θ_(i) − θ̄)(θ_(i) − θ̄)′ over the N leave-one-image-out values θ_(i)."""
    y = np.asarray(labels).astype(np.int64)
    _two_classes(y, "the jackknife")
    loo = _leave_one_out(metric, y, np.atleast_2d(scores))
    n = y.size
    centred = loo - loo.mean(axis=0)
    return (n - 1) / n * centred.T @ centred


def error_covariance(
    metric: str,
    labels: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    method: str = DEFAULT_COVARIANCE,
    *,
    bootstrap: np.ndarray | None = None,
) -> np.ndarray:
    """(J, J) covariance over test images of the ``metric`` of J models (rows of ``scores``).

    ``bootstrap``: for the bootstrap, the (B, J) values of the models on stratified image
    resamples (``stats.resampled_metric``). DeLong's covariance is that of the AUC only.
    """
    y = np.asarray(labels).astype(np.int64)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if method == "jackknife":
        return jackknife_covariance(metric, y, scores)
    if method == "delong":
        if metric != "auc":
            raise ValueError(f"DeLong's covariance is the AUC's; use bootstrap or jackknife for {metric}")
        _two_classes(y, "DeLong's covariance")
        _, v10, v01 = _auc_components(y, scores)
        return np.atleast_2d(np.cov(v10)) / v10.shape[1] + np.atleast_2d(np.cov(v01)) / v01.shape[1]
    if method != "bootstrap":
        raise ValueError(f"unknown covariance method {method!r}; choose one of: {', '.join(COVARIANCES)}")
    if bootstrap is None or bootstrap.ndim != 2 or bootstrap.shape[1] != scores.shape[0]:
        raise ValueError(f"the bootstrap covariance needs (resamples, {scores.shape[0]}) resampled values")
    return np.atleast_2d(np.cov(bootstrap, rowvar=False))


# --------------------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class ORComponents:
    """The Obuchowski–Rockette variance components of t settings × r seeds (module docstring).

    ``var_r`` and ``var_tr`` are the seed and setting×seed variances (Hillis 2005), not clipped.
    """

    n_settings: int
    n_seeds: int
    var: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_r: float
    ms_tr: float
    var_r: float
    var_tr: float


def or_components(theta: np.ndarray, cov: np.ndarray) -> ORComponents:
    """Components of ``theta`` (t, r), the figures of merit of t settings × r seeds, with
    ``cov`` (t·r, t·r) their error covariance, ordered setting-major (row i·r + j: setting i,
    seed j). Var, Cov1, Cov2 and Cov3 are means over the matching cells of ``cov``."""
    theta = np.asarray(theta, dtype=np.float64)
    t, r = theta.shape
    if cov.shape != (t * r, t * r):
        raise ValueError(f"expected a ({t * r}, {t * r}) covariance for {t} × {r} models, got {cov.shape}")
    setting = np.repeat(np.arange(t), r)
    reader = np.tile(np.arange(r), t)
    same_t = setting[:, None] == setting[None, :]
    same_r = reader[:, None] == reader[None, :]

    def mean(mask: np.ndarray) -> float:
        return float(cov[mask].mean()) if mask.any() else math.nan

    var = float(np.diag(cov).mean())
    cov1, cov2, cov3 = mean(~same_t & same_r), mean(same_t & ~same_r), mean(~same_t & ~same_r)
    grand = theta.mean()
    ms_t = r * float(((theta.mean(axis=1) - grand) ** 2).sum()) / (t - 1) if t > 1 else math.nan
    ms_r = t * float(((theta.mean(axis=0) - grand) ** 2).sum()) / (r - 1) if r > 1 else math.nan
    if t > 1 and r > 1:
        resid = theta - theta.mean(axis=1, keepdims=True) - theta.mean(axis=0, keepdims=True) + grand
        ms_tr = float((resid**2).sum()) / ((t - 1) * (r - 1))
        var_tr = ms_tr - var + cov1 + cov2 - cov3
        var_r = (ms_r - var_tr - var - (t - 1) * cov1 + cov2 + (t - 1) * cov3) / t
    else:
        ms_tr = var_tr = math.nan
        var_r = (ms_r - var + cov2) if r > 1 else math.nan
    return ORComponents(t, r, var, cov1, cov2, cov3, ms_t, ms_r, ms_tr, var_r, var_tr)


@dataclass(frozen=True)
class ORHTest:
    """Hillis's F test that t ≥ 2 settings have equal expected metrics (module docstring)."""

    f: float
    df1: int
    ddf: float
    p: float
    components: ORComponents


@dataclass(frozen=True)
class SettingEstimate:
    """An ORH estimate: one setting's mean, or a difference of two, with its t interval."""

    estimate: float
    se: float
    df: float
    low: float
    high: float
    t: float
    p: float


def t_interval(estimate: float, se: float, df: float, level: float) -> SettingEstimate:
    """``estimate`` ± the t quantile on ``df`` × ``se``, and its test of 0 (se 0: p 1 at 0, else 0)."""
    half = t_quantile(df, (1 + level) / 2) * se
    if se > 0:
        t = estimate / se
        p = t_two_sided_p(t, df)
    else:
        t, p = (0.0, 1.0) if estimate == 0 else (math.copysign(math.inf, estimate), 0.0)
    return SettingEstimate(float(estimate), float(se), float(df), estimate - half, estimate + half, t, p)


NOT_ESTIMABLE = SettingEstimate(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)


def _denominator(c: ORComponents) -> tuple[float, float]:
    """Hillis's error term MS(T×R) + r·max(Cov2 − Cov3, 0) and its degrees of freedom."""
    den = c.ms_tr + c.n_seeds * max(c.cov2 - c.cov3, 0.0)
    dof = (c.n_settings - 1) * (c.n_seeds - 1)
    ddf = den**2 / (c.ms_tr**2 / dof) if c.ms_tr > 0 else math.inf
    return den, ddf


def _error_term(theta: np.ndarray, cov: np.ndarray,
                what: str) -> tuple[np.ndarray, ORComponents, float, float]:
    """``theta`` as floats, its components, Hillis's error term and ddf; t ≥ 2 and r ≥ 2 asked."""
    theta = np.asarray(theta, dtype=np.float64)
    t, r = theta.shape
    if t < 2 or r < 2:
        raise ValueError(f"{what} needs at least 2 settings and 2 seeds, got {t} and {r}")
    c = or_components(theta, cov)
    return (theta, c, *_denominator(c))


def orh_test(theta: np.ndarray, cov: np.ndarray) -> ORHTest:
    """Hillis's F test of equal settings over ``theta`` (t ≥ 2 settings, r ≥ 2 seeds)."""
    theta, c, den, ddf = _error_term(theta, cov, "the F test")
    t = theta.shape[0]
    if den > 0:
        f = c.ms_t / den
        p = f_survival(f, t - 1, ddf)
    else:
        f, p = (0.0, 1.0) if c.ms_t == 0 else (math.inf, 0.0)
    return ORHTest(float(f), t - 1, float(ddf), float(p), c)


def orh_difference(theta: np.ndarray, cov: np.ndarray, *, level: float = 0.95) -> SettingEstimate:
    """Setting 0 − setting 1 of ``theta`` (2, r): Δ of the means over the r paired seeds, SE
    √{2·[MS(T×R) + r·max(Cov2 − Cov3, 0)] / r} on Hillis's ddf (r = 1: the test-set part
    alone, on a normal quantile; not estimable, NaN, where the per-seed Δ agree exactly though
    each carries test-set noise)."""
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape[0] != 2:
        raise ValueError(f"a difference needs 2 settings, got {theta.shape[0]}")
    if theta.shape[1] == 1:
        var = max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)
        return t_interval(float(theta[0, 0] - theta[1, 0]), math.sqrt(var), math.inf, level)
    return orh_contrasts(theta, cov, [(0, 1)], level=level)[0]


def orh_contrasts(theta: np.ndarray, cov: np.ndarray, pairs: Sequence[tuple[int, int]], *,
                  level: float = 0.95) -> list[SettingEstimate]:
    """Setting i − setting j of ``theta`` (t, r) for each (i, j) of ``pairs``, all on the error
    term of the t settings together (the OR-DBM MRMC analysis of t settings): SE √{2·[MS(T×R) +
    r·max(Cov2 − Cov3, 0)] / r} with MS(T×R) and the covariances over all t settings, on Hillis's
    ddf with (t − 1)(r − 1) degrees of freedom behind MS(T×R)."""
    theta, c, den, ddf = _error_term(theta, cov, "contrasts on a shared error term")
    r = theta.shape[1]
    means = theta.mean(axis=1)
    out = []
    for i, j in pairs:
        estimate = float(means[i] - means[j])
        if den <= 0 and c.var - c.cov1 > 0:  # the per-seed Δ agree exactly yet each carries test-set noise
            out.append(dataclasses.replace(NOT_ESTIMABLE, estimate=estimate))
        else:
            out.append(t_interval(estimate, math.sqrt(max(2 * den / r, 0.0)), ddf, level))
    return out


def orh_pairwise(theta: np.ndarray, cov: np.ndarray, reference: int, *,
                 level: float = 0.95) -> list[SettingEstimate]:
    """Each setting of ``theta`` (t, r) minus setting ``reference`` on the family's error term
    (:func:`orh_contrasts`); the reference's own row is left out."""
    others = [(i, reference) for i in range(np.asarray(theta).shape[0]) if i != reference]
    return orh_contrasts(theta, cov, others, level=level)


def orh_setting(theta: np.ndarray, cov: np.ndarray, *, level: float = 0.95) -> SettingEstimate:
    """One setting's mean of ``theta`` (r,) over its seeds: SE √{[MS(R) + r·max(Cov2, 0)] / r}
    on [MS(R) + r·max(Cov2, 0)]² / [MS(R)² / (r − 1)] degrees of freedom (r = 1: that model's
    own test-set variance, on a normal quantile). ``t``/``p`` test a mean of 0 (of no use for
    a metric; kept for symmetry with a difference). Where the seeds' metrics agree exactly and
    share no test-set covariance (SE 0 though each model has test-set noise: two seeds can do
    this) the interval is not estimable: NaN, with the estimate."""
    theta = np.asarray(theta, dtype=np.float64).ravel()
    r = theta.size
    if r == 1:
        return t_interval(float(theta[0]), math.sqrt(max(float(cov[0, 0]), 0.0)), math.inf, level)
    c = or_components(theta[None, :], cov)
    part = c.ms_r + r * max(c.cov2, 0.0)
    if part <= 0 and c.var > 0:  # the seeds' metrics agree exactly yet each carries test-set noise
        return dataclasses.replace(NOT_ESTIMABLE, estimate=float(theta.mean()))
    df = part**2 / (c.ms_r**2 / (r - 1)) if c.ms_r > 0 else math.inf
    return t_interval(float(theta.mean()), math.sqrt(part / r), df, level)
