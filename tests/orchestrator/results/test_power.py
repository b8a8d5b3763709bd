"""Power planning (orchestrator.results.power): the planning rule against statsmodels' exact
t-test power, its nominal power in a simulation with known variance parts, and a sweep's plan
built on the same variance parts as `report compare`'s interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.results import comparisons
from orchestrator.results.build import build_tables
from orchestrator.results.power import plan_seeds, power_from_sweep
from orchestrator.results.stats import delong_covariance, metric_function, setting_difference

from _results_fixtures import scored_sweep


@pytest.mark.parametrize("effect", [0.6, 1.0, 1.5, 2.5])
def test_seeds_needed_without_test_noise_match_statsmodels_exact_t_test_power(effect):
    """With no test-set part the plan is a one-sample t test on the per-seed Δ: the K it picks is
    within one seed of the exact (noncentral t) sample size statsmodels solves for."""
    from statsmodels.stats.power import TTestPower

    exact = TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, alternative="two-sided")
    plan = plan_seeds(effect * 0.02, 0.02**2, 0.0, 3)
    assert plan.seeds_needed is not None and abs(plan.seeds_needed - math.ceil(exact)) <= 1, (plan, exact)
    # ... and K seeds reach the asked power by statsmodels' exact computation, give or take the rule's
    # normal approximation of the noncentral t (a few points of power at small K)
    reached = TTestPower().power(effect_size=effect, nobs=plan.seeds_needed, alpha=0.05, alternative="two-sided")
    assert 0.75 <= reached <= 0.95, reached


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


def test_a_sweeps_plan_uses_the_interval_s_variance_parts(alike):
    """For AP both use the same image resamples, so the plan's SE with the sweep's seeds is the
    compare interval's SE exactly; the floor (s²_Δ at least each Δ's own test-set noise) binds
    here, so a plan from the raw s²_Δ would promise a smaller SE than the interval gives."""
    trials, predictions = alike
    raw, (y, pa, pb) = _raw_seed_variance(trials, predictions, "ap")
    plan = power_from_sweep(trials, predictions, "AttnMel-CNN-Lesion", "AttnMel-CNN", metric="ap", n_resamples=400)
    interval = setting_difference(y, pa, pb, "ap", paired=True, n_resamples=400, seed=0)
    assert plan.seed_var > raw  # the floor is in force
    assert plan.se_now == pytest.approx(interval.se, rel=1e-12)
    assert plan.seed_var / 3 == pytest.approx(interval.seed_var, rel=1e-12)


def test_a_sweeps_auc_plan_floors_the_seed_variance_with_delongs_covariances(alike):
    trials, predictions = alike
    raw, (y, pa, pb) = _raw_seed_variance(trials, predictions, "auc")
    plan = power_from_sweep(trials, predictions, "AttnMel-CNN-Lesion", "AttnMel-CNN")
    _, cov = delong_covariance(y, np.concatenate([pa, pb]))
    w = np.concatenate([np.eye(3), -np.eye(3)], axis=1)
    cov_delta = w @ cov @ w.T
    shared = (cov_delta.sum() - np.trace(cov_delta)) / 6
    assert plan.seed_var == pytest.approx(max(raw, np.trace(cov_delta) / 3 - shared), rel=1e-12) and plan.seed_var > raw
    assert plan.image_var == pytest.approx(max(shared, 0.0), abs=1e-15)
    # DeLong and the bootstrap estimate the same covariances: the two SEs agree to resampling noise
    interval = setting_difference(y, pa, pb, "auc", paired=True, n_resamples=2000, seed=0)
    assert plan.se_now == pytest.approx(interval.se, rel=0.15)
