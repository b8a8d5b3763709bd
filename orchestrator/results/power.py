"""How many seeds a claim needs: power planning for the difference of two settings.

The method is Hillis, Obuchowski & Berbaum's (Acad Radiol 2008) for the Obuchowski–Rockette–
Hillis analysis (``orchestrator.results.orh``), with the test images fixed (a sweep has one
test set; only the seeds, its readers, are added). With K paired seeds per setting the test of
two settings is F = t² on ddf degrees of freedom, and under Δ it is noncentral F(1, ddf, λ):

    λ = Δ² / SE_K²,   SE_K² = s²_Δ/K + c_Δ,   ddf = SE_K⁴ / ((s²_Δ/K)² / (K − 1)),

with s²_Δ = 2·[σ²_τR + Var − Cov1 − (Cov2 − Cov3)] the variance of a per-seed Δ about the
setting's mean (it shrinks with more seeds) and c_Δ = 2·max(Cov2 − Cov3, 0) the test-set
covariance the seeds' Δ share (it does not: only more test images shrink it). Power(K) =
P(F(1, ddf, λ) > F₁₋α(1, ddf)); the plan is the smallest K that reaches the asked power. With
no test-set part this is the exact power of the one-sample t test on the per-seed Δ.

From a sweep, σ²_τR = MS(T×R) − Var + Cov1 + Cov2 − Cov3 is estimated from its paired seeds and
set to 0 where negative (a variance; Hillis et al. do the same), the covariances from the
test images (bootstrap, jackknife or DeLong). σ²_τR rests on K − 1 degrees of freedom, so the
plan also gives the seeds needed at the ends of the 80 % range of MS(T×R) (χ² on K − 1). From
a paper's table, where no per-image scores exist, c_Δ is Hanley & McNeil's variance of each AUC
on the paper's test counts with an assumed correlation between the two models, taken as wholly
shared by the seeds, and s²_Δ = 2·(assumed seed SD)².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.results import comparisons
from orchestrator.results.paper import paper_results
from orchestrator.results.orh import DEFAULT_COVARIANCE, covariance_text, error_covariance, or_components
from orchestrator.results.stats import (
    DEFAULT_RESAMPLES, check_resampling, hanley_mcneil_variance, metric_function, resampled_metric,
)

__all__ = [
    "MAX_SEEDS", "PAPER_TEST_SPLITS", "PowerPlan", "plan_seeds", "power_from_paper", "power_from_sweep", "power_of_test",
]

MAX_SEEDS = 1000  # beyond this "more seeds" is not an answer; the plan says so
# Test split sizes of the paper's datasets (images, melanomas): ISIC 2017 Test_v2, ISBI 2016 Part 3 test.
PAPER_TEST_SPLITS = {"isic2017": (600, 117), "isic2016": (379, 75)}


@dataclass(frozen=True)
class PowerPlan:
    """Seeds per setting needed to detect ``delta``, and the smallest Δ the current seeds detect.

    ``seeds_needed`` is None when no number of seeds up to :data:`MAX_SEEDS` suffices (the
    test-set part alone is too large: more test images are needed). ``seeds_range`` is the
    seeds needed at the ends of the pilot's 80 % range of the seed variance (``None`` ends as
    for ``seeds_needed``; an empty tuple where no range applies: a paper plan). ``source`` says
    where the variances came from; ``delta_source`` whether Δ was observed or given."""

    metric: str
    delta: float
    delta_source: str
    seeds_now: int
    seed_var: float
    image_var: float
    alpha: float
    power: float
    se_now: float
    detectable_now: float
    seeds_needed: int | None
    floor: float
    source: str
    method: str
    seeds_range: tuple[int | None, ...] = ()


def _ddf(seed_var: float, image_var: float, seeds: int) -> float:
    part = seed_var / seeds
    return (part + image_var) ** 2 / (part**2 / (seeds - 1)) if part > 0 else math.inf


def _critical(ddf: float, alpha: float) -> float:
    from scipy.special import chdtri, fdtri

    return float(chdtri(1, alpha)) if math.isinf(ddf) else float(fdtri(1, ddf, 1 - alpha))


def power_of_test(delta: float, seed_var: float, image_var: float, seeds: int, alpha: float = 0.05) -> float:
    """Power of the two-sided ORH test of Δ = 0 with ``seeds`` paired seeds when the true Δ is
    ``delta`` (module docstring)."""
    from scipy.special import chndtr, ncfdtr

    ddf = _ddf(seed_var, image_var, seeds)
    lam = delta**2 / (seed_var / seeds + image_var)
    crit = _critical(ddf, alpha)
    return float(1 - (chndtr(crit, 1, lam) if math.isinf(ddf) else ncfdtr(1, ddf, lam, crit)))


def _detectable(seed_var: float, image_var: float, seeds: int | float, alpha: float, power: float) -> float:
    """The smallest |Δ| detected with ``power``: √(λ*·SE²), λ* the noncentrality that power needs."""
    from scipy.special import chndtrinc, ncfdtrinc

    ddf = _ddf(seed_var, image_var, seeds) if math.isfinite(seeds) else math.inf
    crit = _critical(ddf, alpha)
    lam = float(chndtrinc(crit, 1, 1 - power) if math.isinf(ddf) else ncfdtrinc(1, ddf, 1 - power, crit))
    se2 = (seed_var / seeds if math.isfinite(seeds) else 0.0) + image_var
    return math.sqrt(lam * se2)


def _seeds_needed(delta: float, seed_var: float, image_var: float, alpha: float, power: float) -> int | None:
    if delta == 0:
        return None
    for k in range(2, MAX_SEEDS + 1):
        if power_of_test(delta, seed_var, image_var, k, alpha) >= power:
            return k
    return None


def plan_seeds(
    delta: float, seed_var: float, image_var: float, seeds_now: int, *, alpha: float = 0.05, power: float = 0.8,
    metric: str = "auc", delta_source: str = "given", source: str = "",
    seed_var_range: tuple[float, float] | None = None,
) -> PowerPlan:
    """The plan for Δ = ``delta`` from ``seed_var`` (s²_Δ, per seed) and ``image_var`` (c_Δ);
    ``seed_var_range``: the ends of s²_Δ's range, for the plan's ``seeds_range``.

    Raises ``ValueError`` when both variances are 0 (nothing to plan from) or an argument is
    out of range."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie strictly between 0 and 1, got {alpha!r} and {power!r}")
    if seed_var < 0 or image_var < 0 or not (math.isfinite(seed_var) and math.isfinite(image_var)):
        raise ValueError(f"variances must be finite and >= 0, got seed {seed_var!r}, test set {image_var!r}")
    if seed_var == 0 and image_var == 0:
        raise ValueError("cannot estimate power: the per-seed differences do not vary and the test set gives them "
                         "no variance (identical rankings?), so any Δ would look certain")
    if seeds_now < 2:
        raise ValueError(f"power planning needs at least 2 seeds per setting to see seed variance, got {seeds_now}")
    se_now = math.sqrt(seed_var / seeds_now + image_var)
    detectable = _detectable(seed_var, image_var, seeds_now, alpha, power)
    needed = _seeds_needed(delta, seed_var, image_var, alpha, power)
    floor = _detectable(seed_var, image_var, math.inf, alpha, power)
    spread: tuple[int | None, ...] = ()
    if seed_var_range is not None and delta != 0:
        spread = tuple(_seeds_needed(delta, v, image_var, alpha, power) for v in seed_var_range)
    method = (f"Hillis, Obuchowski & Berbaum (2008): two-sided ORH test at α = {alpha:g}, smallest K with power ≥ "
              f"{power:g} under noncentral F(1, ddf, Δ²/SE_K²), SE_K² = s²_Δ/K + c_Δ, test images fixed")
    return PowerPlan(metric, float(delta), delta_source, seeds_now, float(seed_var), float(image_var), alpha, power,
                     se_now, float(detectable), needed, float(floor), source, method, spread)


def power_from_sweep(
    trials: pd.DataFrame, predictions: pd.DataFrame, a: str, b: str, *, delta: float | None = None,
    alpha: float = 0.05, power: float = 0.8, metric: str = "auc", split: str = "test",
    n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, covariance: str = DEFAULT_COVARIANCE,
) -> PowerPlan:
    """The plan for ``a`` − ``b`` from a sweep's paired seeds (the settings must share two or
    more): s²_Δ = 2·[σ̂²_τR + Var − Cov1 − (Cov2 − Cov3)] with σ̂²_τR ≥ 0, c_Δ = 2·max(Cov2 −
    Cov3, 0), the covariances by ``covariance`` as in ``report compare``. ``delta`` None: the
    observed Δ."""
    from scipy.special import chdtri

    fn = metric_function(metric)
    check_resampling(n_resamples, 0.95)
    y, probs_a, probs_b = comparisons.paired_matrices(trials, predictions, a, b, split=split)
    k = len(probs_a)
    scores = np.concatenate([probs_a, probs_b])
    theta = np.array([fn(y, p) for p in scores]).reshape(2, k)
    boot = resampled_metric(metric, y, scores, n_resamples, seed) if covariance == "bootstrap" else None
    c = or_components(theta, error_covariance(metric, y, scores, covariance, bootstrap=boot))
    alone = c.var - c.cov1 - (c.cov2 - c.cov3)  # what each per-seed Δ varies by with σ²_τR = 0

    def seed_var(ms_tr: float) -> float:
        return 2 * (max(ms_tr - alone, 0.0) + alone)

    # MS(T×R)·(K − 1)/E[MS(T×R)] is χ²(K − 1): the 80 % range of E[MS(T×R)] (chdtri inverts the upper tail,
    # so its 0.1 point is the χ² 90th percentile: the low end of E).
    spread = tuple(seed_var(c.ms_tr * (k - 1) / float(chdtri(k - 1, q))) for q in (0.1, 0.9))
    given = delta is not None
    return plan_seeds(float(delta) if given else float(theta[0].mean() - theta[1].mean()), seed_var(c.ms_tr),
                      2 * max(c.cov2 - c.cov3, 0.0), k, alpha=alpha, power=power, metric=metric,
                      delta_source="given" if given else "observed", seed_var_range=spread,
                      source=f"variance components from the sweep's {k} paired seeds (σ²_τR ≥ 0), error covariances "
                             f"by the {covariance_text(covariance, n_resamples, seed)}, {y.size} {split} images")


def power_from_paper(
    dataset: str, a: str, b: str, *, seed_sd: float, correlation: float, delta: float | None = None,
    alpha: float = 0.05, power: float = 0.8, seeds_now: int = 3,
) -> PowerPlan:  # fmt: skip
    """The plan for the paper's ``a`` − ``b`` test AUC on ``dataset`` (Tables 1–2), whose test
    split counts are :data:`PAPER_TEST_SPLITS`: c_Δ = v_a + v_b − 2ρ·√(v_a·v_b) from Hanley &
    McNeil's variances and the assumed ``correlation`` ρ of the two models' errors; s²_Δ =
    2·``seed_sd``² (independent seed effects). ``seeds_now`` is the K whose detectable Δ is
    reported."""
    if dataset not in PAPER_TEST_SPLITS:
        raise ValueError(f"no test split counts for {dataset!r}; the paper's datasets: {', '.join(PAPER_TEST_SPLITS)}")
    if not -1 <= correlation <= 1 or not seed_sd >= 0:
        raise ValueError(f"need -1 <= correlation <= 1 and seed SD >= 0, got {correlation!r} and {seed_sd!r}")
    table = paper_results()
    rows = table[(table["dataset"] == dataset) & table["auc"].notna()]
    aucs = {}
    for name in (a, b):
        match = rows[rows["model"].str.lower() == name.strip().lower()]
        if match.empty:
            raise ValueError(f"the paper reports no {dataset} AUC for {name!r}; it reports: {', '.join(rows['model'])}")
        aucs[name] = float(match["auc"].iloc[0])
    images, melanomas = PAPER_TEST_SPLITS[dataset]
    va, vb = (hanley_mcneil_variance(aucs[n], melanomas, images - melanomas) for n in (a, b))
    image_var = va + vb - 2 * correlation * math.sqrt(va * vb)
    given = delta is not None
    return plan_seeds(float(delta) if given else aucs[a] - aucs[b], 2 * seed_sd**2, max(image_var, 0.0), seeds_now,
                      alpha=alpha, power=power, metric="auc", delta_source="given" if given else "the paper's",
                      source=f"the paper's {dataset} test AUCs {aucs[a]:.3f} and {aucs[b]:.3f} on {images} images "
                             f"({melanomas} melanoma), Hanley–McNeil variances, assumed correlation {correlation:g} "
                             f"and seed SD {seed_sd:g}; the test-set variance taken as wholly shared by the seeds")
