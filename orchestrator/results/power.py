"""How many seeds a claim needs: power planning for the difference of two settings.

The expected single-model Δ of two settings (``stats.setting_difference``) has, with K paired
seeds per setting, SE_K² = s²_Δ/K + c_Δ: s²_Δ the seed-to-seed variance of the per-seed Δ (it
shrinks with more seeds) and c_Δ the test-set covariance the seeds' Δ share (it does not: only
more test images shrink it). A two-sided test at level α detects Δ with power 1 − β when

    |Δ| ≥ (t_{df, 1−α/2} + t_{df, 1−β}) · SE_K,   df = Satterthwaite's (s²_Δ/K + c_Δ)² / ((s²_Δ/K)²/(K − 1)),

the usual normal-approximation planning rule with t quantiles for the few seeds. From a sweep,
s²_Δ comes from its paired seeds, floored like the intervals' at the test-set noise each seed's
Δ carries alone (``stats.seed_and_shared_variance``), and c_Δ from DeLong's covariances of the
per-seed AUCs on the same images (AP: the stratified image bootstrap); from a paper's table,
where no per-image scores exist, c_Δ is Hanley & McNeil's variance of each AUC on the paper's
test counts with an assumed correlation between the two models, and s²_Δ = 2·(assumed seed SD)².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.results import comparisons
from orchestrator.results.paper import paper_results
from orchestrator.results.stats import (
    DEFAULT_RESAMPLES, delong_covariance, hanley_mcneil_variance, metric_function, resampled_metric,
    seed_and_shared_variance, t_quantile,
)  # fmt: skip

__all__ = ["MAX_SEEDS", "PAPER_TEST_SPLITS", "PowerPlan", "plan_seeds", "power_from_paper", "power_from_sweep"]

MAX_SEEDS = 1000  # beyond this "more seeds" is not an answer; the plan says so
# Test split sizes of the paper's datasets (images, melanomas): ISIC 2017 Test_v2, ISBI 2016 Part 3 test.
PAPER_TEST_SPLITS = {"isic2017": (600, 117), "isic2016": (379, 75)}


@dataclass(frozen=True)
class PowerPlan:
    """Seeds per setting needed to detect ``delta``, and the smallest Δ the current seeds detect.

    ``seeds_needed`` is None when no number of seeds up to :data:`MAX_SEEDS` suffices (the
    test-set part alone is too large: more test images are needed). ``source`` says where the
    variances came from; ``delta_source`` whether Δ was observed or given."""

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


def _multiplier(seed_part: float, image_var: float, seeds: int, alpha: float, power: float) -> float:
    var = seed_part + image_var
    df = var**2 / (seed_part**2 / (seeds - 1)) if seed_part > 0 and seeds > 1 else math.inf
    return t_quantile(df, 1 - alpha / 2) + t_quantile(df, power)


def plan_seeds(
    delta: float, seed_var: float, image_var: float, seeds_now: int, *, alpha: float = 0.05, power: float = 0.8,
    metric: str = "auc", delta_source: str = "given", source: str = "",
) -> PowerPlan:  # fmt: skip
    """The plan for Δ = ``delta`` from ``seed_var`` (s²_Δ, per seed) and ``image_var`` (c_Δ).

    Raises ``ValueError`` when both variances are 0 (nothing to plan from) or an argument is
    out of range."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie strictly between 0 and 1, got {alpha!r} and {power!r}")
    if seed_var < 0 or image_var < 0 or not (math.isfinite(seed_var) and math.isfinite(image_var)):
        raise ValueError(f"variances must be finite and >= 0, got seed {seed_var!r}, test set {image_var!r}")
    if seed_var == 0 and image_var == 0:
        raise ValueError("cannot estimate power: the per-seed differences do not vary and the test set gives them "
                         "no variance (identical rankings?), so any Δ would look certain")  # fmt: skip
    if seeds_now < 2:
        raise ValueError(f"power planning needs at least 2 seeds per setting to see seed variance, got {seeds_now}")

    def se(k: int) -> float:
        return math.sqrt(seed_var / k + image_var)

    se_now = se(seeds_now)
    detectable = _multiplier(seed_var / seeds_now, image_var, seeds_now, alpha, power) * se_now
    needed = None
    if delta != 0:
        for k in range(2, MAX_SEEDS + 1):
            if abs(delta) >= _multiplier(seed_var / k, image_var, k, alpha, power) * se(k):
                needed = k
                break
    floor = (t_quantile(math.inf, 1 - alpha / 2) + t_quantile(math.inf, power)) * math.sqrt(image_var)
    method = (f"two-sided test at α = {alpha:g} with power {power:g}: smallest K with |Δ| ≥ (t(1−α/2) + t(power))·SE_K, "
              "SE_K² = s²_Δ/K + c_Δ, Satterthwaite df")  # fmt: skip
    return PowerPlan(metric, float(delta), delta_source, seeds_now, float(seed_var), float(image_var), alpha, power,
                     se_now, float(detectable), needed, float(floor), source, method)  # fmt: skip


def power_from_sweep(
    trials: pd.DataFrame, predictions: pd.DataFrame, a: str, b: str, *, delta: float | None = None,
    alpha: float = 0.05, power: float = 0.8, metric: str = "auc", split: str = "test",
    n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
) -> PowerPlan:  # fmt: skip
    """The plan for ``a`` − ``b`` from a sweep's paired seeds (the settings must share two or
    more): s²_Δ of the per-seed Δ, at least the test-set noise each Δ carries alone, and c_Δ the
    mean off-diagonal test-set covariance of the per-seed Δ (DeLong for AUC, the image bootstrap
    for AP), as in ``stats.setting_difference``. ``delta`` None: the observed Δ."""
    fn = metric_function(metric)
    y, probs_a, probs_b = comparisons.paired_matrices(trials, predictions, a, b, split=split)
    k = len(probs_a)
    observed = np.array([fn(y, pa) - fn(y, pb) for pa, pb in zip(probs_a, probs_b)])
    weights = np.concatenate([np.eye(k), -np.eye(k)], axis=1)  # row j: Δ_j = A_j − B_j
    if metric == "auc":
        _, cov = delong_covariance(y, np.concatenate([probs_a, probs_b]))
        source = "test-set covariance by DeLong"
    else:
        cov = np.cov(resampled_metric(metric, y, np.concatenate([probs_a, probs_b]), n_resamples, seed), rowvar=False)
        source = f"test-set covariance by image bootstrap ({n_resamples})"
    # The same rule as the intervals of `report compare`: s²_Δ no smaller than the test-set noise
    # each seed's Δ carries alone, else a plan from 2-3 seeds promises more than the compare gives.
    seed_var, shared = seed_and_shared_variance(observed, weights @ cov @ weights.T)
    image_var = max(shared, 0.0)
    given = delta is not None
    return plan_seeds(float(delta) if given else float(observed.mean()), seed_var, image_var, k, alpha=alpha,
                      power=power, metric=metric, delta_source="given" if given else "observed",
                      source=f"seed variance from the sweep's paired seeds (at least each Δ's own test-set "
                             f"noise), {source}, {y.size} {split} images")  # fmt: skip


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
                             f"and seed SD {seed_sd:g}")  # fmt: skip
