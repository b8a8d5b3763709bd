"""orchestrator.results.stats and orchestrator.results.comparisons: DeLong against its definition, bootstrap
intervals, expected single-model intervals against a simulation with known truth, Holm/BH against statsmodels,
settings compared by seed and as families."""

from __future__ import annotations

import logging
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from scipy.stats import t as student_t
from statsmodels.stats.multitest import multipletests

from attnmel.metrics import resampled_ap, resampled_auc
from orchestrator.results.orh import orh_pairwise, orh_test
from orchestrator.results.comparisons import compare_family, compare_settings, setting_intervals, setting_names
from orchestrator.results.stats import (
    benjamini_hochberg, bootstrap_ci, delong_covariance, delong_test, hanley_mcneil_variance, holm, normal_quantile,
    paired_bootstrap_test, resampled_metric, setting_difference, setting_interval, stratified_counts, t_quantile,
    t_two_sided_p, two_sided_p,
)  # fmt: skip
from orchestrator.results.text import format_compare, format_family


def _scores(rng: np.random.Generator, y: np.ndarray, shift: float, levels: int | None = None) -> np.ndarray:
    """Scores that rise with the label; ``levels`` rounds them onto a grid so that ties occur."""
    s = rng.normal(size=y.size) + shift * y
    return np.round(s * levels) / levels if levels else s


def _brute_force_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """DeLong et al. (1988) by its definition: ψ over all (positive, negative) pairs, loops only."""
    pos = [i for i in range(y.size) if y[i] == 1]
    neg = [j for j in range(y.size) if y[j] == 0]
    m, n = len(pos), len(neg)

    def psi(x: float, z: float) -> float:
        return 1.0 if x > z else (0.5 if x == z else 0.0)

    v10, v01, aucs = {}, {}, {}
    for name, s in (("a", a), ("b", b)):
        v10[name] = [sum(psi(s[i], s[j]) for j in neg) / n for i in pos]
        v01[name] = [sum(psi(s[i], s[j]) for i in pos) / m for j in neg]
        aucs[name] = sum(v10[name]) / m

    def cov(u: list[float], v: list[float]) -> float:
        mu, mv = sum(u) / len(u), sum(v) / len(v)
        return sum((x - mu) * (z - mv) for x, z in zip(u, v)) / (len(u) - 1)

    s10 = cov(v10["a"], v10["a"]) + cov(v10["b"], v10["b"]) - 2 * cov(v10["a"], v10["b"])
    s01 = cov(v01["a"], v01["a"]) + cov(v01["b"], v01["b"]) - 2 * cov(v01["a"], v01["b"])
    return aucs["a"], aucs["b"], s10 / m + s01 / n


# --------------------------------------------------------------------------- DeLong


def test_normal_tail_and_quantile_equal_scipys_far_into_the_tails():
    for z in [0.0, 1e-9, 0.5, 1.0, 1.959963984540054, 3.0, 8.0, 20.0, 37.5]:
        for sign in (1, -1):
            assert two_sided_p(sign * z) == pytest.approx(2 * norm.sf(z), rel=1e-12, abs=0)
    assert two_sided_p(35.0) > 0 and 1 - NormalDist().cdf(9.0) == 0  # 1 - Φ rounds to 0 from z ≈ 8.3
    for q in [1e-12, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.995, 1 - 1e-12]:
        assert normal_quantile(q) == pytest.approx(norm.ppf(q), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_delong_matches_its_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.ones(7, int), np.zeros(9, int)])
    a = _scores(rng, y, 1.0, levels=2)
    b = np.round(0.6 * a + 0.4 * _scores(rng, y, 0.5), 1)  # correlated with a, ties of its own
    auc_a, auc_b, var = _brute_force_delong(y, a, b)
    result = delong_test(y, a, b)
    assert (result.n_pos, result.n_neg) == (7, 9)
    assert np.allclose([result.value_a, result.value_b], [auc_a, auc_b])
    assert np.isclose(result.se**2, var)
    z = (auc_a - auc_b) / math.sqrt(var)
    assert np.isclose(result.z, z)
    assert np.isclose(result.p, 2 * (1 - norm.cdf(abs(z))))
    half = norm.ppf(0.975) * math.sqrt(var)
    assert np.allclose([result.ci_low, result.ci_high], [result.delta - half, result.delta + half])


def test_delong_aucs_are_scikit_learns_and_the_test_is_symmetric():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.2).astype(int)
    a, b = _scores(rng, y, 1.2, levels=3), _scores(rng, y, 0.8)
    ab, ba = delong_test(y, a, b), delong_test(y, b, a)
    assert np.isclose(ab.value_a, roc_auc_score(y, a)) and np.isclose(ab.value_b, roc_auc_score(y, b))
    assert np.isclose(ab.delta, -ba.delta) and np.isclose(ab.z, -ba.z) and np.isclose(ab.p, ba.p)
    assert np.allclose([ab.ci_low, ab.ci_high], [-ba.ci_high, -ba.ci_low])
    wider = delong_test(y, a, b, level=0.99)
    assert wider.ci_low < ab.ci_low and wider.ci_high > ab.ci_high and wider.p == ab.p


def test_delong_degenerate_variance():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(10, int), np.zeros(30, int)]
    a = _scores(rng, y, 1.0)
    for b in (a.copy(), np.exp(a)):  # the same ranking gives the same AUC and zero variance
        result = delong_test(y, a, b)
        assert result.delta == 0 and result.se == 0 and result.z == 0 and result.p == 1.0
        assert result.ci_low == result.ci_high == 0
    # Perfect against constant: both components are constant, so the variance is 0 but Δ = 0.5.
    result = delong_test(y, y + 0.0, np.full(y.size, 0.3))
    assert result.delta == 0.5 and result.z == math.inf and result.p == 0.0


def test_delong_finds_a_perfect_model_better_than_chance():
    rng = np.random.default_rng(3)
    y = rng.permutation(np.r_[np.ones(40, int), np.zeros(160, int)])
    perfect = y + 0.5 * rng.random(y.size)
    result = delong_test(y, perfect, rng.random(y.size))
    assert result.value_a == 1.0
    assert result.p < 1e-6 and result.ci_low > 0


def test_delong_rejects_bad_input():
    y = np.array([1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="differ in shape"):
        delong_test(y, np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="both classes"):
        delong_test(np.zeros(5, int), np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match="at least 2 images of each: got 1 melanoma"):
        delong_test(np.array([1, 0, 0, 0]), np.arange(4.0), np.arange(4.0))
    with pytest.raises(ValueError, match="0 or 1"):
        delong_test(np.array([2, 1, 0, 0]), np.arange(4.0), np.arange(4.0))


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("levels", [None, 2, 5])  # continuous scores, and heavy ties
def test_block_metrics_equal_scikit_learn_on_every_resample(levels):
    rng = np.random.default_rng(4)
    y = rng.permutation(np.r_[np.ones(9, int), np.zeros(31, int)])  # classes interleaved
    s = _scores(rng, y, 1.0, levels=levels) if levels else _scores(rng, y, 1.0)
    counts = next(stratified_counts(y, 200, seed=1))
    auc_rows, ap_rows = resampled_auc(y, s, counts), resampled_ap(y, s, counts)
    for k, row in enumerate(counts):
        y_star, s_star = np.repeat(y, row), np.repeat(s, row)  # the resample, materialised
        assert auc_rows[k] == pytest.approx(roc_auc_score(y_star, s_star), abs=1e-12)
        assert ap_rows[k] == pytest.approx(average_precision_score(y_star, s_star), abs=1e-12)
    both = resampled_metric("auc", y, np.stack([s, -s]), 200, seed=1)
    assert np.allclose(both[:, 0], auc_rows) and np.allclose(both[:, 1], 1 - auc_rows)  # same resamples


def test_stratified_resamples_keep_both_class_counts():
    y = np.r_[np.ones(1, int), np.zeros(19, int)]  # one melanoma: plain resampling would often lose it
    rows = np.concatenate(list(stratified_counts(y, 600, seed=0)))
    assert rows.shape == (600, 20)
    assert (rows[:, y == 1].sum(axis=1) == 1).all() and (rows[:, y == 0].sum(axis=1) == 19).all()
    # Each image is drawn Binomial(class size, 1/class size) times: mean 1.
    assert rows[:, 1:].mean() == pytest.approx(1.0, abs=0.02)
    assert np.array_equal(rows, np.concatenate(list(stratified_counts(y, 600, seed=0))))
    # ... but one melanoma is too few for an interval to mean anything: one clear error.
    with pytest.raises(ValueError, match="at least 2 images of each: got 1 melanoma and 19 other"):
        bootstrap_ci(y, np.linspace(0, 1, 20), "ap", n_resamples=200)


def test_bootstrap_interval_contains_estimate_is_reproducible_and_narrows_with_n():
    def draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        y = np.r_[np.ones(n // 4, int), np.zeros(n - n // 4, int)]
        return y, _scores(rng, y, 1.0)

    y, p = draw(40, 5)
    small = bootstrap_ci(y, p, "auc", n_resamples=200, seed=7)
    assert small.estimate == pytest.approx(roc_auc_score(y, p))
    assert small.low < small.estimate < small.high
    assert small == bootstrap_ci(y, p, "auc", n_resamples=200, seed=7)
    assert small != bootstrap_ci(y, p, "auc", n_resamples=200, seed=8)
    assert small.method == "stratified bootstrap, 200 resamples, seed 7, percentile 95%"
    big = bootstrap_ci(*draw(400, 6), "auc", n_resamples=200, seed=7)
    assert big.high - big.low < 0.6 * (small.high - small.low)  # ~1/√10 in theory
    ap = bootstrap_ci(y, p, "ap", n_resamples=200, seed=7)
    assert ap.estimate == pytest.approx(average_precision_score(y, p)) and ap.low < ap.estimate < ap.high


def test_bootstrap_rejects_bad_input():
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y, p, "f1", n_resamples=200)
    for too_few in (0, 1, 199):  # 1 gave NaN, a few an interval that could exclude its own estimate
        with pytest.raises(ValueError, match="n_resamples must be an integer of at least 200"):
            bootstrap_ci(y, p, n_resamples=too_few)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(y, p, n_resamples=200, level=95)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci(y, np.array([0.1, np.nan, 0.2, 0.8]), n_resamples=200)
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_ci(np.ones(4, int), p, n_resamples=200)


def test_paired_bootstrap_test():
    rng = np.random.default_rng(8)
    y = np.r_[np.ones(25, int), np.zeros(75, int)]
    a, b = _scores(rng, y, 3.0), _scores(rng, y, 0.3)
    same = paired_bootstrap_test(y, a, a.copy(), n_resamples=200)
    assert same.delta == 0 and same.p == 1.0 and math.isnan(same.z)
    ab = paired_bootstrap_test(y, a, b, "ap", n_resamples=200, seed=1)
    assert ab.value_a == pytest.approx(average_precision_score(y, a)) and ab.metric == "ap"
    assert ab.ci_low > 0 and ab.p == pytest.approx(2 / 201)  # every resample favours a: the floor
    ba = paired_bootstrap_test(y, b, a, "ap", n_resamples=200, seed=1)
    assert ba.delta == pytest.approx(-ab.delta) and ba.p == ab.p
    assert np.allclose([ba.ci_low, ba.ci_high], [-ab.ci_high, -ab.ci_low])
    # For AUC the bootstrap's standard error agrees with DeLong's.
    boot, delong = paired_bootstrap_test(y, a, b, "auc", n_resamples=200), delong_test(y, a, b)
    assert boot.delta == pytest.approx(delong.delta) and boot.se == pytest.approx(delong.se, rel=0.25)


# --------------------------------------------------------------------------- tables

N_IMAGES = 60
SETTINGS = {  # (variant, roi, paper name, λ1, λ2) → (seeds, separation of the scores)
    ("attnmel", "lesion", "AttnMel-CNN-Lesion", 0.001, 0.01): ([0, 1, 2], 1.5),
    ("attnmel", "lesion", "AttnMel-CNN-Lesion", 0.01, 0.1): ([0, 1], 1.2),
    ("vgg16_gap", "none", "VGG-16-GAP", 0.0, 0.0): ([0, 1, 2], 0.6),
}


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A sweep's trials and per-image predictions: 3 settings, val and test splits, and a
    failed trial, a finished trial without predictions and a trial missing five test images."""
    rng = np.random.default_rng(0)
    ids = [f"ISIC_{i:07d}" for i in range(N_IMAGES)]
    labels = (np.arange(N_IMAGES) % 3 == 0).astype(int)
    trials, preds = [], []
    for (variant, roi, name, l1, l2), (seeds, shift) in SETTINGS.items():
        for seed in [*seeds, 3]:
            trial_id = f"{variant}_{roi}_{l1:g}_{seed}"
            status = "TERMINATED" if seed != 3 else ("ERROR" if variant == "vgg16_gap" else "TERMINATED")
            trials.append({"sweep": "s", "trial_id": trial_id, "dataset": "isic2017", "variant": variant,
                           "paper_name": name, "roi": roi, "seed": seed, "lambda1": l1, "lambda2": l2,
                           "backbone": "vgg16_bn", "pretrained": True, "status": status})  # fmt: skip
            if seed == 3:
                continue  # no predictions: failed, or finished without writing them
            for split in ("val", "test"):
                prob = 1 / (1 + np.exp(-_scores(rng, labels, shift)))
                keep = slice(5, None) if (variant, seed, split) == ("vgg16_gap", 2, "test") else slice(None)
                preds.append(pd.DataFrame({"sweep": "s", "trial_id": trial_id, "split": split, "image_id": ids[keep],
                                           "label": labels[keep], "prob": prob[keep]}))  # fmt: skip
    return pd.DataFrame(trials), pd.concat(preds, ignore_index=True)


def _trial(preds: pd.DataFrame, trial_id: str, split: str = "test") -> pd.DataFrame:
    return preds[(preds["trial_id"] == trial_id) & (preds["split"] == split)].set_index("image_id").sort_index()


def test_setting_intervals(tables):
    trials, preds = tables
    per_setting, per_trial = setting_intervals(trials, preds, n_resamples=200, seed=3, ensemble=True)
    assert list(per_setting["paper_name"]) == ["VGG-16-GAP", "AttnMel-CNN-Lesion", "AttnMel-CNN-Lesion"]
    assert list(per_setting["n_trials"]) == [3, 3, 2]
    assert list(per_setting["lambda1"]) == [0.0, 0.001, 0.01]
    assert len(per_trial) == 8 and "vgg16_gap_none_0_3" not in set(per_trial["trial_id"])
    for row in per_trial.itertuples():
        mine = _trial(preds, row.trial_id)
        assert row.auc == pytest.approx(roc_auc_score(mine["label"], mine["prob"]))
        assert row.ap == pytest.approx(average_precision_score(mine["label"], mine["prob"]))
        assert row.auc_low <= row.auc <= row.auc_high and row.ap_low <= row.ap <= row.ap_high
        assert row.n_images == len(mine)
    # VGG-16-GAP lives on the 55 images all three trials scored: its number is the mean of the
    # trials' metrics there, the ensemble its own (mean probability) number.
    gap = [_trial(preds, f"vgg16_gap_none_0_{s}") for s in (0, 1, 2)]
    common = gap[2].index
    row = per_setting.iloc[0]
    aucs = [roc_auc_score(t.loc[common, "label"], t.loc[common, "prob"]) for t in gap]
    assert row.n_images == 55 and row.n_pos == gap[2]["label"].sum()
    assert row.auc == pytest.approx(np.mean(aucs)) and row.auc_seed_sd == pytest.approx(np.std(aucs, ddof=1))
    assert row.auc_low < row.auc < row.auc_high and row.covers == "seeds and test images"
    mean = np.mean([t.loc[common, "prob"] for t in gap], axis=0)
    assert row.ensemble_auc == pytest.approx(roc_auc_score(gap[2]["label"], mean))
    # The interval is the t interval of the two variance components (ORH: the seed part s²/K).
    assert row.auc_se**2 >= row.auc_seed_sd**2 / 3 + row.auc_image_se**2 - 1e-12
    half = student_t.ppf(0.975, row.auc_df) * row.auc_se
    assert (row.auc_low, row.auc_high) == pytest.approx((row.auc - half, min(row.auc + half, 1.0)))
    # The validation split is its own table.
    val_setting, _ = setting_intervals(trials, preds, split="val", n_resamples=200, per_trial=False)
    assert (val_setting["n_images"] == N_IMAGES).all()
    assert not np.allclose(val_setting["auc"], per_setting["auc"])


def test_compare_settings_pairs_trials_by_seed(tables, caplog):
    trials, preds = tables
    frame = compare_settings(trials, preds, "attnmel+lesion@0.001,0.01", "vgg16_gap", n_resamples=200)
    assert list(frame["pair"]) == ["expected single model", "seed 0", "seed 1", "seed 2", "ensemble of 3 seeds"]
    assert list(frame["n_images"]) == [55, 60, 60, 55, 55]
    expected = frame.iloc[0]
    assert bool(expected.paired) and expected.covers == "seeds and test images"
    assert expected.delta == pytest.approx(expected.metric_a - expected.metric_b)
    for row in frame.iloc[1:4].itertuples():
        a, b = _trial(preds, f"attnmel_lesion_0.001_{row.seed}"), _trial(preds, f"vgg16_gap_none_0_{row.seed}")
        a = a.loc[b.index]
        expected = delong_test(a["label"], a["prob"], b["prob"])
        assert row.metric_a == pytest.approx(roc_auc_score(a["label"], a["prob"]))
        assert row.delta == pytest.approx(expected.delta) and row.p == pytest.approx(expected.p)
    assert frame["method"].iloc[1:].str.startswith("DeLong").all()
    assert frame["method"].iloc[0].startswith("mean over 3 paired seeds of Δ = A − B; 95% t interval")
    # Seeds that only one side ran (seed 2) are left out, with a warning.
    with caplog.at_level(logging.WARNING, logger="orchestrator.results.comparisons"):
        other = compare_settings(trials, preds, "AttnMel-CNN-Lesion@0.01,0.1", "vgg-16-gap", metric="ap",
                                 n_resamples=200)  # fmt: skip
    assert list(other["pair"]) == ["expected single model", "seed 0", "seed 1", "ensemble of 2 seeds"]
    assert "seeds [2]" in caplog.text
    rows = other[other["kind"] != "expected single model"]
    assert rows["method"].str.startswith("paired stratified bootstrap").all() and rows["z"].isna().all()
    text = format_compare(frame, "attnmel+lesion@0.001,0.01", "vgg16_gap", "auc")
    first = frame.iloc[1]
    assert "test AUC: A = attnmel+lesion@0.001,0.01  vs  B = vgg16_gap" in text
    assert f"{first.metric_a:.3f}" in text and f"{first.delta:+.3f}" in text and f"{first.p:.3g}" in text
    assert "method: DeLong" in text and "seed rows hold both trained models fixed" in text
    for answer in ("over training randomness (seeds) and test-set sampling", "do these two trained models",
                   "seed ensemble"):  # fmt: skip
        assert answer in text


def test_compare_settings_names(tables):
    trials, preds = tables
    assert setting_names(trials, preds) == ["vgg16_gap", "attnmel+lesion@0.001,0.01", "attnmel+lesion@0.01,0.1"]
    with pytest.raises(ValueError, match=r"'melcnn'.*available: vgg16_gap, attnmel\+lesion@0.001,0.01, attnmel"):
        compare_settings(trials, preds, "melcnn", "vgg16_gap")
    with pytest.raises(ValueError, match=r"ambiguous.*@0.001,0.01.*@0.01,0.1"):
        compare_settings(trials, preds, "AttnMel-CNN-Lesion", "vgg16_gap")
    with pytest.raises(ValueError, match="NAME@λ1,λ2"):
        compare_settings(trials, preds, "attnmel+lesion@0.001", "vgg16_gap")
    with pytest.raises(ValueError, match="same setting"):
        compare_settings(trials, preds, "vgg16_gap", "isic2017:VGG-16-GAP")
    with pytest.raises(ValueError, match="no finished setting 'isic2016:vgg16_gap'"):
        compare_settings(trials, preds, "isic2016:vgg16_gap", "attnmel+lesion@0.01,0.1")


def test_compare_settings_needs_one_trial_per_seed(tables):
    trials, preds = tables
    again = trials[trials["trial_id"] == "vgg16_gap_none_0_0"].assign(sweep="s2")
    again_preds = preds[preds["trial_id"] == "vgg16_gap_none_0_0"].assign(sweep="s2")
    both, both_preds = pd.concat([trials, again]), pd.concat([preds, again_preds])
    with pytest.raises(ValueError, match="several finished trials with seed 0"):
        compare_settings(both, both_preds, "vgg16_gap", "AttnMel-CNN-Lesion@0.01,0.1")


def test_compare_family_adjusts_like_statsmodels_and_names_the_family(tables):
    trials, preds = tables
    frame = compare_family(trials, preds, "attnmel+lesion@*", "vgg16_gap", n_resamples=200)
    assert list(frame["setting"]) == ["attnmel+lesion@0.001,0.01", "attnmel+lesion@0.01,0.1"]
    assert frame["family"].iloc[0] == "attnmel+lesion@* vs vgg16_gap (isic2017, test AUC): 2 comparisons"
    assert np.allclose(frame["p_holm"], multipletests(frame["p"], method="holm")[1])
    assert np.allclose(frame["q_bh"], multipletests(frame["p"], method="fdr_bh")[1])
    # Each member's row is the OR-DBM analysis of the whole family (the seeds all three ran, 0 and 1,
    # on the images all those trials scored): Δ, p and Hillis's F test from the family's error term.
    ids = ["attnmel_lesion_0.001", "attnmel_lesion_0.01", "vgg16_gap_none_0"]
    frames = [_trial(preds, f"{name}_{s}") for name in ids for s in (0, 1)]
    common = sorted(set.intersection(*(set(f.index) for f in frames)))
    y = frames[0].loc[common, "label"].to_numpy()
    scores = np.stack([f.loc[common, "prob"].to_numpy() for f in frames])
    theta = np.array([roc_auc_score(y, row) for row in scores]).reshape(3, 2)
    cov = np.cov(resampled_metric("auc", y, scores, 200, seed=0), rowvar=False)
    pairs, f_test = orh_pairwise(theta, cov, 2), orh_test(theta, cov)
    assert list(frame["delta"]) == pytest.approx([e.estimate for e in pairs])
    assert list(frame["p"]) == pytest.approx([e.p for e in pairs])
    assert (frame["f"] == f_test.f).all() and (frame["f_p"] == f_test.p).all() and (frame["f_seeds"] == 2).all()
    assert frame["method"].str.contains("the family's ORH error term").all()
    # Δ is the pair's own (compare_settings') on the same seeds and images; only its SE pools the family.
    one = compare_settings(trials, preds, "attnmel+lesion@0.01,0.1", "vgg16_gap", n_resamples=200).iloc[0]
    assert frame.iloc[1]["delta"] == pytest.approx(one.delta)
    everything = compare_family(trials, preds, "all", "vgg16_gap", n_resamples=200)
    assert len(everything) == 2 and everything["family"].iloc[0].startswith("every other setting vs vgg16_gap")
    text = format_family(frame)
    assert "family: attnmel+lesion@* vs vgg16_gap" in text and "Holm p" in text and "BH q" in text
    with pytest.raises(ValueError, match=r"'melcnn@\*' names no finished setting.*available: attnmel\+lesion"):
        compare_family(trials, preds, "melcnn@*", "vgg16_gap", n_resamples=200)


# --------------------------------------------------------------------------- t, multiplicity, DeLong covariance


def test_t_quantile_and_tail_equal_scipys():
    for df in (1.0, 2.0, 2.7, 10.0, 250.0, math.inf):
        for q in (0.8, 0.975, 0.995):
            assert t_quantile(df, q) == pytest.approx(student_t.ppf(q, df) if math.isfinite(df) else norm.ppf(q))
        for t in (0.0, 0.5, 2.0, 6.0):
            reference = 2 * (student_t.sf(t, df) if math.isfinite(df) else norm.sf(t))
            assert t_two_sided_p(t, df) == pytest.approx(reference, rel=1e-9)
            assert t_two_sided_p(-t, df) == t_two_sided_p(t, df)


def test_holm_and_benjamini_hochberg_equal_statsmodels():
    rng = np.random.default_rng(12)
    for size in (1, 2, 7, 30):
        p = rng.random(size) ** 3
        p[: size // 3] = p[0]  # ties
        assert np.allclose(holm(p), multipletests(p, method="holm")[1], atol=1e-15)
        assert np.allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], atol=1e-15)
    with_missing = np.array([0.01, np.nan, 0.04, 0.03])
    finite = ~np.isnan(with_missing)
    assert np.isnan(holm(with_missing)[1]) and np.isnan(benjamini_hochberg(with_missing)[1])
    assert np.allclose(holm(with_missing)[finite], multipletests(with_missing[finite], method="holm")[1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.5, 1.5])


def test_delong_covariance_holds_delong_tests_variance():
    rng = np.random.default_rng(13)
    y = (rng.random(120) < 0.3).astype(int)
    a = _scores(rng, y, 1.0, levels=4)
    b, c = a + rng.normal(size=y.size), _scores(rng, y, 0.5)
    aucs, cov = delong_covariance(y, np.stack([a, b, c]))
    assert np.allclose(aucs, [roc_auc_score(y, s) for s in (a, b, c)])
    assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > -1e-12
    for i, j in ((0, 1), (0, 2), (1, 2)):
        scores = (a, b, c)
        assert cov[i, i] + cov[j, j] - 2 * cov[i, j] == pytest.approx(delong_test(y, scores[i], scores[j]).se ** 2)


def test_hanley_mcneil_variance_matches_the_spread_of_simulated_aucs():
    """Exact under the negative-exponential model it was derived for; larger (conservative)
    than the spread of binormal AUCs, here by ~45 %."""
    rng = np.random.default_rng(14)
    m, n, rate = 60, 240, 0.22  # positives Exp(rate), negatives Exp(1): AUC = P(X > Y) = 1/(1 + rate) ≈ 0.82
    y = np.r_[np.ones(m), np.zeros(n)]
    exponential = [roc_auc_score(y, np.r_[rng.exponential(1 / rate, m), rng.exponential(1, n)]) for _ in range(1500)]
    assert hanley_mcneil_variance(1 / (1 + rate), m, n) == pytest.approx(np.var(exponential), rel=0.12)
    shift = math.sqrt(2) * norm.ppf(1 / (1 + rate))  # binormal with the same AUC
    binormal = [roc_auc_score(y, np.r_[rng.normal(shift, 1, m), rng.normal(0, 1, n)]) for _ in range(1500)]
    assert hanley_mcneil_variance(1 / (1 + rate), m, n) > 1.2 * np.var(binormal)
    with pytest.raises(ValueError, match="0 < AUC < 1"):
        hanley_mcneil_variance(1.0, m, n)


# --------------------------------------------------------------------------- known truth
# Seeds × images from a model whose expected single-model AUC is known: image i has a difficulty
# u_i shared by every trained model (the same test images), trial k adds its own noise and a seed
# effect d_k ~ N(δ, τ²) on the melanomas' scores. Trial k's population AUC is Φ(d_k/σ) with
# σ² = 2(σ_u² + σ_e²) = 1, so the expected single-model AUC is Φ(δ/√(1 + τ²)). τ = 0.17 gives a
# seed-to-seed SD of ≈ 0.06 AUC at AUC ≈ 0.69, the set-up.
TAU, SIGMA_U2, SIGMA_E2 = 0.17, 0.3, 0.2


def _known(rng, seeds: int, images: int, deltas: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    m = round(0.195 * images)  # ISIC 2017's share of melanomas
    y = np.r_[np.ones(m, int), np.zeros(images - m, int)]
    u = rng.normal(0, math.sqrt(SIGMA_U2), images)
    out = []
    for delta in deltas:
        d = rng.normal(delta, TAU, seeds)
        out.append(u + rng.normal(0, math.sqrt(SIGMA_E2), (seeds, images)) + d[:, None] * y)
    return y, out


def _expected_auc(delta: float) -> float:
    return float(norm.cdf(delta / math.sqrt(1 + TAU**2)))


@pytest.mark.parametrize("seeds", [3, 8])
def test_setting_interval_covers_the_expected_single_model_auc(seeds):
    rng, truth, replicates = np.random.default_rng(100 + seeds), _expected_auc(0.5), 250
    covered = 0
    for r in range(replicates):
        y, (probs,) = _known(rng, seeds, 128, (0.5,))
        est = setting_interval(y, probs, "auc", n_resamples=200, seed=r)
        covered += est.low <= truth <= est.high
    assert est.covers == "seeds and test images" and est.n_seeds == (seeds,)
    assert covered / replicates >= 0.90, covered / replicates


@pytest.mark.parametrize("seeds", [3, 8])
def test_setting_difference_covers_a_known_delta_and_holds_its_level(seeds):
    rng, replicates = np.random.default_rng(200 + seeds), 250
    truth = _expected_auc(0.7) - _expected_auc(0.5)
    covered = rejected = 0
    for r in range(replicates):
        y, (a, b) = _known(rng, seeds, 128, (0.7, 0.5))
        est = setting_difference(y, a, b, "auc", paired=True, n_resamples=200, seed=r)
        covered += est.low <= truth <= est.high
        y, (a, b) = _known(rng, seeds, 128, (0.5, 0.5))  # Δ = 0
        rejected += setting_difference(y, a, b, "auc", paired=True, n_resamples=200, seed=r).p < 0.05
    assert covered / replicates >= 0.90, covered / replicates
    assert rejected / replicates <= 0.08, rejected / replicates


def test_one_seed_interval_says_it_covers_test_sampling_only():
    rng = np.random.default_rng(3)
    y, (probs, other) = _known(rng, 3, 128, (0.5, 0.5))
    one = setting_interval(y, probs[:1], n_resamples=200)
    assert one.covers.startswith("test images only") and math.isnan(one.seed_var) and math.isinf(one.df)
    assert one.estimate == pytest.approx(roc_auc_score(y, probs[0]))
    boot = resampled_metric("auc", y, probs[:1], 200, seed=0)[:, 0]
    assert one.se == pytest.approx(boot.std(ddof=1))  # the trial's own bootstrap SE
    mixed = setting_difference(y, probs[:1], other, paired=False, n_resamples=200)
    assert mixed.covers.startswith("test images and the seeds of the side with several") and mixed.n_seeds == (1, 3)
    assert mixed.estimate == pytest.approx(roc_auc_score(y, probs[0]) - np.mean([roc_auc_score(y, p) for p in other]))
    with pytest.raises(ValueError, match="paired seeds need as many trials"):
        setting_difference(y, probs[:1], other, paired=True, n_resamples=200)
