"""The Obuchowski–Rockette–Hillis analysis against references we did not write: the OR-DBM MRMC
software's published results on the Van Dyke data set (../shared/referee/vandyke/), scikit-learn
for the figures of merit, and the covariance estimators against their definitions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from orchestrator.results.orh import (
    error_covariance, jackknife_covariance, or_components, orh_difference, orh_pairwise, orh_setting,
    orh_test,
)
from orchestrator.results.stats import delong_covariance, resampled_metric

VANDYKE = Path(__file__).resolve().parents[3].parent / "shared" / "referee" / "vandyke" / "vandyke.csv"

# The published numbers (../shared/referee/vandyke/README.md): OR-DBM MRMC 2.51, RJafroc, MRMCaov.
PUBLISHED = {
    "auc0": [0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
    "auc1": [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169],
    "means": [0.89703704, 0.94083736], "difference": -0.04380032,
    "ms_t": 0.00479617, "ms_r": 0.00383620, "ms_tr": 0.00055103,
    "var_r": 0.00153500, "var_tr": 0.00020040,
    "var": 0.00080229, "cov1": 0.00034661, "cov2": 0.00034407, "cov3": 0.00023903,
    "f": 4.456319, "ddf": 15.25967, "p": 0.05166569,
    "diff_se": 0.02074862, "diff_ci": (-0.08795950, 0.00035885),
    "t0": (0.03317360, 12.74, 0.82522360, 0.96885048),
    "t1": (0.02156637, 12.71, 0.89413783, 0.98753689),
}


@pytest.fixture(scope="module")
def vandyke() -> tuple[np.ndarray, np.ndarray]:
    """Truth (114 cases) and ratings (10 = 2 treatments × 5 readers, treatment-major)."""
    if not VANDYKE.is_file():
        pytest.skip(f"the Van Dyke referee data is not at {VANDYKE}")
    data = pd.read_csv(VANDYKE).sort_values(["treatment", "reader", "case"])
    truth = data[(data.treatment == 0) & (data.reader == 0)].truth.to_numpy()
    ratings = data.rating.to_numpy(dtype=float).reshape(10, truth.size)
    return truth, ratings


def _digits(value: float) -> float:
    """The tolerance of a published number: half a unit of its last printed digit."""
    text = f"{value:.10g}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-decimals + 1e-12


def test_vandyke_jackknife_equals_the_published_or_dbm_mrmc_results(vandyke):
    y, ratings = vandyke
    theta = np.array([roc_auc_score(y, r) for r in ratings]).reshape(2, 5)
    cov = error_covariance("auc", y, ratings, "jackknife")
    # Every published number is printed to 8 digits at most: agreement to 1e-6 or better.
    for got, want in zip(theta.ravel(), PUBLISHED["auc0"] + PUBLISHED["auc1"]):
        assert got == pytest.approx(want, abs=1e-8)
    c = or_components(theta, cov)
    for name in ("ms_t", "ms_r", "ms_tr", "var_r", "var_tr", "var", "cov1", "cov2", "cov3"):
        assert getattr(c, name) == pytest.approx(PUBLISHED[name], abs=min(1e-6, _digits(PUBLISHED[name]))), name
    test = orh_test(theta, cov)
    assert test.df1 == 1
    assert test.f == pytest.approx(PUBLISHED["f"], abs=1e-6)
    assert test.ddf == pytest.approx(PUBLISHED["ddf"], abs=1e-5)  # printed to 5 decimals
    assert test.p == pytest.approx(PUBLISHED["p"], abs=1e-8)
    diff = orh_difference(theta, cov)
    assert diff.estimate == pytest.approx(PUBLISHED["difference"], abs=1e-8)
    assert diff.se == pytest.approx(PUBLISHED["diff_se"], abs=1e-8)
    assert (diff.low, diff.high) == pytest.approx(PUBLISHED["diff_ci"], abs=1e-8)
    assert diff.p == pytest.approx(test.p, rel=1e-12)  # with two settings, t² = F
    for i, key in enumerate(("t0", "t1")):
        block = slice(5 * i, 5 * i + 5)
        one = orh_setting(theta[i], cov[block, block])
        se, df, low, high = PUBLISHED[key]
        assert one.estimate == pytest.approx(PUBLISHED["means"][i], abs=1e-8)
        assert one.se == pytest.approx(se, abs=1e-8)
        assert one.df == pytest.approx(df, abs=0.005)  # printed to 2 decimals
        assert (one.low, one.high) == pytest.approx((low, high), abs=1e-8)


def test_vandyke_through_the_products_statistics_with_the_jackknife(vandyke):
    """What `report compare/show --covariance jackknife` compute (stats.setting_difference and
    setting_interval) on the Van Dyke ratings: the published difference and treatment CIs."""
    from orchestrator.results.stats import setting_difference, setting_interval

    y, ratings = vandyke
    diff = setting_difference(y, ratings[:5], ratings[5:], "auc", paired=True, covariance="jackknife")
    assert diff.estimate == pytest.approx(PUBLISHED["difference"], abs=1e-8)
    assert diff.se == pytest.approx(PUBLISHED["diff_se"], abs=1e-8)
    assert (diff.low, diff.high) == pytest.approx(PUBLISHED["diff_ci"], abs=1e-8)
    assert diff.df == pytest.approx(PUBLISHED["ddf"], abs=1e-5) and diff.p == pytest.approx(PUBLISHED["p"], abs=1e-8)
    assert "jackknife over test images" in diff.method
    for i, key in enumerate(("t0", "t1")):
        one = setting_interval(y, ratings[5 * i:5 * i + 5], "auc", covariance="jackknife")
        se, df, low, high = PUBLISHED[key]
        assert (one.se, one.low, one.high) == pytest.approx((se, low, high), abs=1e-8)
        assert one.df == pytest.approx(df, abs=0.005)


def test_jackknife_covariance_is_its_definition_for_auc_and_ap():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(9, int), np.zeros(21, int)]
    scores = np.round(rng.normal(size=(3, y.size)) + y, 1)  # ties included
    for metric, fn in (("auc", roc_auc_score), ("ap", average_precision_score)):
        loo = np.array([[fn(np.delete(y, i), np.delete(s, i)) for s in scores] for i in range(y.size)])
        want = (y.size - 1) / y.size * (loo - loo.mean(0)).T @ (loo - loo.mean(0))
        assert jackknife_covariance(metric, y, scores) == pytest.approx(want, abs=1e-12)


def test_delong_and_bootstrap_covariances_are_the_stats_modules():
    rng = np.random.default_rng(6)
    y = np.r_[np.ones(20, int), np.zeros(60, int)]
    scores = rng.normal(size=(4, y.size)) + y
    assert error_covariance("auc", y, scores, "delong") == pytest.approx(delong_covariance(y, scores)[1])
    boot = resampled_metric("ap", y, scores, 300, seed=2)
    assert error_covariance("ap", y, scores, "bootstrap", bootstrap=boot) == pytest.approx(
        np.cov(boot, rowvar=False))
    with pytest.raises(ValueError, match="DeLong's covariance is the AUC's"):
        error_covariance("ap", y, scores, "delong")
    with pytest.raises(ValueError, match="at least 2 melanoma"):
        error_covariance("auc", np.r_[1, np.zeros(10, int)], scores[:, :11], "jackknife")


def test_f_test_of_three_settings_equals_its_formula_and_scipys_f_distribution():
    from scipy.stats import f as f_dist

    rng = np.random.default_rng(9)
    y = np.r_[np.ones(30, int), np.zeros(90, int)]
    scores = rng.normal(size=(3 * 4, y.size)) + np.repeat([0.6, 0.8, 1.0], 4)[:, None] * y
    theta = np.array([roc_auc_score(y, s) for s in scores]).reshape(3, 4)
    cov = error_covariance("auc", y, scores, "delong")
    test = orh_test(theta, cov)
    c = test.components
    den = c.ms_tr + 4 * max(c.cov2 - c.cov3, 0)
    assert test.f == pytest.approx(c.ms_t / den)
    assert test.ddf == pytest.approx(den**2 / (c.ms_tr**2 / 6))
    assert test.p == pytest.approx(f_dist.sf(test.f, 2, test.ddf), rel=1e-9)
    assert c.ms_t == pytest.approx(4 * np.var(theta.mean(1), ddof=1))


def test_one_seed_falls_back_to_the_test_set_variance_alone():
    cov = np.array([[4e-4, 1e-4], [1e-4, 9e-4]])
    one = orh_setting(np.array([0.8]), cov[:1, :1])
    assert one.se == pytest.approx(0.02) and math.isinf(one.df)
    diff = orh_difference(np.array([[0.8], [0.75]]), cov)
    assert diff.se == pytest.approx(math.sqrt(4e-4 + 9e-4 - 2e-4)) and math.isinf(diff.df)


# --------------------------------------------------------------------------- known truth
# The seeds × images model of test_stats.py: image difficulty u_i shared by every trained model,
# each trial its own noise and a seed effect d_k ~ N(δ, τ²) on the melanomas' scores. DeLong's
# covariances keep these simulations fast; the bootstrap's are checked on the same model in
# test_stats.py (setting_interval, setting_difference).
TAU, SIGMA_U2, SIGMA_E2 = 0.17, 0.3, 0.2


def _draw(rng, seeds: int, images: int, deltas) -> tuple[np.ndarray, np.ndarray]:
    m = round(0.195 * images)
    y = np.r_[np.ones(m, int), np.zeros(images - m, int)]
    u = rng.normal(0, math.sqrt(SIGMA_U2), images)
    scores = [u + rng.normal(0, math.sqrt(SIGMA_E2), (seeds, images)) + rng.normal(d, TAU, seeds)[:, None] * y
              for d in deltas]
    return y, np.concatenate(scores)


def _theta(y, scores, settings):
    from attnmel.metrics import roc_auc

    return np.array([roc_auc(y, s) for s in scores]).reshape(settings, -1)


@pytest.mark.slow
def test_paired_test_holds_its_level_and_a_family_its_family_wise_error():
    """Δ = 0: the two-setting test rejects 4–7 % at α = 0.05 (3 seeds, 128 images, 2000 runs);
    10 null settings against a reference, on the family's error term with Holm: FWER ≤ 5 %."""
    from orchestrator.results.stats import holm, setting_difference

    rng = np.random.default_rng(1)
    rejected = 0
    for _ in range(2000):
        y, scores = _draw(rng, 3, 128, (0.5, 0.5))
        rejected += setting_difference(y, scores[:3], scores[3:], paired=True, n_resamples=200,
                                       covariance="delong").p < 0.05
    assert 0.04 <= rejected / 2000 <= 0.07, rejected / 2000
    rng = np.random.default_rng(2)
    family_errors = f_rejected = 0
    for _ in range(500):
        y, scores = _draw(rng, 3, 128, (0.5,) * 11)
        theta, cov = _theta(y, scores, 11), error_covariance("auc", y, scores, "delong")
        family_errors += bool((holm([e.p for e in orh_pairwise(theta, cov, 10)]) < 0.05).any())
        f_rejected += orh_test(theta, cov).p < 0.05
    assert family_errors / 500 <= 0.05, family_errors / 500
    assert 0.02 <= f_rejected / 500 <= 0.08, f_rejected / 500


@pytest.mark.slow
def test_power_in_a_simulation_is_what_the_analysis_predicts():
    """With the variance components of a large pilot (40 seeds), the HOB power of 5 seeds is within
    a few points of how often the two-setting test rejects in 1000 simulated sweeps."""
    from orchestrator.results.power import power_of_test
    from orchestrator.results.stats import setting_difference

    rng = np.random.default_rng(8)
    seed_var, image_var, deltas = [], [], []
    for _ in range(100):
        y, scores = _draw(rng, 40, 128, (0.66, 0.5))
        theta = _theta(y, scores, 2)
        c = or_components(theta, error_covariance("auc", y, scores, "delong"))
        seed_var.append(2 * c.ms_tr)
        image_var.append(2 * (c.cov2 - c.cov3))
        deltas.append(theta[0].mean() - theta[1].mean())
    predicted = power_of_test(float(np.mean(deltas)), float(np.mean(seed_var)), max(float(np.mean(image_var)), 0), 5)
    rejected = 0
    for _ in range(1000):
        y, scores = _draw(rng, 5, 128, (0.66, 0.5))
        rejected += setting_difference(y, scores[:5], scores[5:], paired=True, n_resamples=200,
                                       covariance="delong").p < 0.05
    assert abs(rejected / 1000 - predicted) <= 0.04, (rejected / 1000, predicted)


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [3, 8])
def test_setting_interval_covers_the_expected_single_model_auc_at_its_level(seeds):
    """The one-setting ORH interval covers Φ(δ/√(1 + τ²)) in 92.5–97 % of 1000 runs (128 images)."""
    from scipy.stats import norm

    from orchestrator.results.stats import setting_interval

    rng, truth, covered = np.random.default_rng(30 + seeds), float(norm.cdf(0.5 / math.sqrt(1 + TAU**2))), 0
    for _ in range(1000):
        y, scores = _draw(rng, seeds, 128, (0.5,))
        est = setting_interval(y, scores, n_resamples=200, covariance="delong")
        covered += est.low <= truth <= est.high
    assert 0.925 <= covered / 1000 <= 0.97, covered / 1000
