"""Power planning (orchestrator.results.power): the planning rule against statsmodels' exact
t-test power, its nominal power in a simulation with known variance parts, and a sweep's plan
built on the same variance parts as `report compare`'s interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.results import comparisons
from orchestrator.results.build import build_tables
from orchestrator.results.orh import error_covariance, or_components
from orchestrator.results.power import plan_seeds, power_from_sweep, power_of_test
from orchestrator.results.stats import metric_function, resampled_metric, setting_difference

from _results_fixtures import scored_sweep


@pytest.mark.parametrize("effect", [0.6, 1.0, 1.5, 2.5])
def test_seeds_needed_without_test_noise_match_statsmodels_exact_t_test_power(effect):
    """With no test-set part the plan is a one-sample t test on the per-seed Δ: the K it picks is
    the exact (noncentral t) sample size statsmodels solves for, rounded up."""
    from statsmodels.stats.power import TTestPower

    exact = TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, alternative="two-sided")
    plan = plan_seeds(effect * 0.02, 0.02**2, 0.0, 3)
    assert plan.seeds_needed == max(2, math.ceil(exact)), (plan, exact)
    # ... and K seeds reach the asked power by statsmodels' exact computation, K − 1 do not
    reached = TTestPower().power(effect_size=effect, nobs=plan.seeds_needed, alpha=0.05, alternative="two-sided")
    assert reached >= 0.8 and power_of_test(effect * 0.02, 0.02**2, 0.0, plan.seeds_needed) == pytest.approx(reached)
    if plan.seeds_needed > 2:
        assert TTestPower().power(effect_size=effect, nobs=plan.seeds_needed - 1, alpha=0.05) < 0.8


def test_planned_seeds_reach_the_asked_power_in_a_simulation_with_known_variances():
    """Per-seed Δ_k = Δ + a_k + e: seed effects a_k (variance σ²) and one test-set error e shared by
    the seeds (variance c, known). The plan's K, tested at α = 0.05 with SE² = s²/K + c and
    Satterthwaite df, rejects Δ = 0 about 80 % of the time; with K − 2 seeds clearly less."""
    from scipy import stats as sps

    delta, sigma2, c = 0.05, 0.04**2, 0.01**2
    plan = plan_seeds(delta, sigma2, c, 3)
    rng = np.random.default_rng(0)

    def rejection_rate(k: int, reps: int = 4000) -> float:
        a = rng.normal(0, math.sqrt(sigma2), size=(reps, k))
        e = rng.normal(0, math.sqrt(c), size=(reps, 1))
        x = delta + a + e
        s2 = x.var(axis=1, ddof=1)
        var = s2 / k + c
        df = var**2 / ((s2 / k) ** 2 / (k - 1))
        p = 2 * sps.t.sf(np.abs(x.mean(axis=1)) / np.sqrt(var), df)
        return float((p < 0.05).mean())

    k = plan.seeds_needed
    assert k is not None and k >= 5, plan
    assert 0.74 <= rejection_rate(k) <= 0.9
    assert rejection_rate(k - 2) < 0.74


@pytest.fixture(scope="module")
def alike(tmp_path_factory):
    """Two settings of nearly the same skill, 3 seeds each: the per-seed Δ vary by test-set noise
    alone, and with 3 seeds their sample variance falls below it often (the fixture's seed makes it
    do so here for AUC and AP)."""
    sweep_dir, _ = scored_sweep(tmp_path_factory.mktemp("alike"), signals={("attnmel", "lesion"): 1.2,
                                ("attnmel", "none"): 1.0}, seeds=3, n_test=90, seed=3)  # fmt: skip
    tables = build_tables(sweep_dir)
    return tables.trials, tables.predictions


def _raw_seed_variance(trials, predictions, metric):
    y, pa, pb = comparisons.paired_matrices(trials, predictions, "AttnMel-CNN-Lesion", "AttnMel-CNN")
    fn = metric_function(metric)
    return float(np.var([fn(y, a) - fn(y, b) for a, b in zip(pa, pb)], ddof=1)), (y, pa, pb)


def _components(y, pa, pb, metric, covariance, n_resamples=400):
    fn = metric_function(metric)
    scores = np.concatenate([pa, pb])
    theta = np.array([fn(y, p) for p in scores]).reshape(2, len(pa))
    boot = resampled_metric(metric, y, scores, n_resamples, 0) if covariance == "bootstrap" else None
    return or_components(theta, error_covariance(metric, y, scores, covariance, bootstrap=boot))


@pytest.mark.parametrize(("metric", "covariance"), [("ap", "bootstrap"), ("auc", "delong"), ("auc", "jackknife")])
def test_a_sweeps_plan_is_built_from_the_or_variance_components(alike, metric, covariance):
    """s²_Δ = 2·[max(σ̂²_τR, 0) + Var − Cov1 − (Cov2 − Cov3)], c_Δ = 2·max(Cov2 − Cov3, 0), from
    the same components as the compare's interval. In this fixture σ̂²_τR < 0 (the per-seed Δ
    vary less than test-set noise alone makes them): the plan sets it to 0, so it promises no
    more precision than the test set has, while the compare's interval uses MS(T×R) as observed."""
    trials, predictions = alike
    raw, (y, pa, pb) = _raw_seed_variance(trials, predictions, metric)
    c = _components(y, pa, pb, metric, covariance)
    alone = c.var - c.cov1 - (c.cov2 - c.cov3)
    assert c.var_tr < 0 and raw == pytest.approx(2 * c.ms_tr)  # t = 2: MS(T×R) = s²_Δ/2
    plan = power_from_sweep(trials, predictions, "AttnMel-CNN-Lesion", "AttnMel-CNN", metric=metric,
                            n_resamples=400, covariance=covariance)
    assert plan.seed_var == pytest.approx(2 * alone, rel=1e-12) and plan.seed_var > raw
    assert plan.image_var == pytest.approx(2 * max(c.cov2 - c.cov3, 0.0), abs=1e-15)
    interval = setting_difference(y, pa, pb, metric, paired=True, n_resamples=400, seed=0, covariance=covariance)
    assert interval.seed_var == pytest.approx(raw / 3, rel=1e-12)
    assert interval.image_var == pytest.approx(plan.image_var, rel=1e-12, abs=1e-15)
    # The 80 % range: the low end of the seed variance needs fewer seeds than the estimate, the high more.
    from scipy.stats import chi2

    low, high = plan.seeds_range
    e_low, e_high = (c.ms_tr * 2 / chi2.ppf(q, 2) for q in (0.9, 0.1))  # K − 1 = 2 df
    assert low == plan_seeds(plan.delta, 2 * (max(e_low - alone, 0) + alone), plan.image_var, 3).seeds_needed
    assert high == plan_seeds(plan.delta, 2 * (max(e_high - alone, 0) + alone), plan.image_var, 3).seeds_needed
    if None not in (low, high, plan.seeds_needed):
        assert low <= plan.seeds_needed <= high
