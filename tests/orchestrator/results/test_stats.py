"""orchestrator.results.stats and orchestrator.results.comparisons: DeLong against its definition, bootstrap intervals, settings compared by seed."""

from __future__ import annotations

import logging
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from orchestrator.results.comparisons import compare_settings, setting_names, variant_intervals
from orchestrator.results.text import format_compare, format_intervals
from attnmel.metrics import rows_ap, rows_auc
from orchestrator.results.stats import _index_blocks, bootstrap_ci, delong_test, normal_quantile, paired_bootstrap_test, two_sided_p


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
    with pytest.raises(ValueError, match="at least 2 positive"):
        delong_test(np.array([1, 0, 0, 0]), np.arange(4.0), np.arange(4.0))
    with pytest.raises(ValueError, match="0 or 1"):
        delong_test(np.array([2, 1, 0, 0]), np.arange(4.0), np.arange(4.0))


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("levels", [None, 2, 5])  # continuous scores, and heavy ties
def test_block_metrics_equal_scikit_learn_on_every_resample(levels):
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(9, int), np.zeros(31, int)]
    s = _scores(rng, y, 1.0, levels=levels) if levels else _scores(rng, y, 1.0)
    block = next(_index_blocks(y, 200, seed=1))  # positives first in every row, with repeats
    auc_rows, ap_rows = rows_auc(s[block], 9), rows_ap(s[block], 9)
    y_star = y[block[0]]
    for k, idx in enumerate(block):
        assert auc_rows[k] == pytest.approx(roc_auc_score(y_star, s[idx]), abs=1e-12)
        assert ap_rows[k] == pytest.approx(average_precision_score(y_star, s[idx]), abs=1e-12)


def test_stratified_resamples_keep_both_class_counts():
    y = np.r_[np.ones(1, int), np.zeros(19, int)]  # one melanoma: plain resampling would often lose it
    blocks = list(_index_blocks(y, 600, seed=0))
    rows = np.concatenate(blocks)
    assert rows.shape == (600, 20)
    assert (y[rows].sum(axis=1) == 1).all()
    ci = bootstrap_ci(y, np.linspace(0, 1, 20), "ap", n_resamples=100)
    assert 0 <= ci.low <= ci.high <= 1


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
    ap = bootstrap_ci(y, p, "ap", n_resamples=100, seed=7)
    assert ap.estimate == pytest.approx(average_precision_score(y, p)) and ap.low < ap.estimate < ap.high


def test_bootstrap_rejects_bad_input():
    y, p = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y, p, "f1", n_resamples=10)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(y, p, n_resamples=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(y, p, n_resamples=10, level=95)
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci(y, np.array([0.1, np.nan, 0.2, 0.8]), n_resamples=10)
    with pytest.raises(ValueError, match="both classes"):
        bootstrap_ci(np.ones(4, int), p, n_resamples=10)


def test_paired_bootstrap_test():
    rng = np.random.default_rng(8)
    y = np.r_[np.ones(25, int), np.zeros(75, int)]
    a, b = _scores(rng, y, 3.0), _scores(rng, y, 0.3)
    same = paired_bootstrap_test(y, a, a.copy(), n_resamples=50)
    assert same.delta == 0 and same.p == 1.0 and math.isnan(same.z)
    ab = paired_bootstrap_test(y, a, b, "ap", n_resamples=100, seed=1)
    assert ab.value_a == pytest.approx(average_precision_score(y, a)) and ab.metric == "ap"
    assert ab.ci_low > 0 and ab.p == pytest.approx(2 / 101)  # every resample favours a: the floor
    ba = paired_bootstrap_test(y, b, a, "ap", n_resamples=100, seed=1)
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


def test_variant_intervals(tables):
    trials, preds = tables
    per_setting, per_trial = variant_intervals(trials, preds, n_resamples=25, seed=3)
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
    # The seed-averaged prediction of VGG-16-GAP lives on the 55 images all three trials scored.
    gap = [_trial(preds, f"vgg16_gap_none_0_{s}") for s in (0, 1, 2)]
    common = gap[2].index
    mean = np.mean([t.loc[common, "prob"] for t in gap], axis=0)
    row = per_setting.iloc[0]
    assert row.n_images == 55 and row.n_pos == gap[2]["label"].sum()
    assert row.auc_mean_prob == pytest.approx(roc_auc_score(gap[2]["label"], mean))
    assert row.ap_mean_prob == pytest.approx(average_precision_score(gap[2]["label"], mean))
    # The validation split is its own table.
    val_setting, _ = variant_intervals(trials, preds, split="val", n_resamples=10)
    assert (val_setting["n_images"] == N_IMAGES).all()
    assert not np.allclose(val_setting["auc_mean_prob"], per_setting["auc_mean_prob"])
    text = format_intervals(per_setting, per_trial)
    assert f"{row.auc_mean_prob:.3f} [{row.auc_low:.3f}, {row.auc_high:.3f}]" in text
    assert "attnmel+lesion@0.01,0.1" in text and "25 resamples, seed 3" in text


def test_compare_settings_pairs_trials_by_seed(tables, caplog):
    trials, preds = tables
    frame = compare_settings(trials, preds, "attnmel+lesion@0.001,0.01", "vgg16_gap")
    assert list(frame["pair"]) == ["seed 0", "seed 1", "seed 2", "seed-averaged"]
    assert list(frame["n_images"]) == [60, 60, 55, 55]
    for row in frame.iloc[:3].itertuples():
        a, b = _trial(preds, f"attnmel_lesion_0.001_{row.seed}"), _trial(preds, f"vgg16_gap_none_0_{row.seed}")
        a = a.loc[b.index]
        expected = delong_test(a["label"], a["prob"], b["prob"])
        assert row.metric_a == pytest.approx(roc_auc_score(a["label"], a["prob"]))
        assert row.delta == pytest.approx(expected.delta) and row.p == pytest.approx(expected.p)
    assert frame["method"].str.startswith("DeLong").all()
    # Seeds that only one side ran (seed 2) are left out, with a warning.
    with caplog.at_level(logging.WARNING, logger="orchestrator.results.comparisons"):
        other = compare_settings(trials, preds, "AttnMel-CNN-Lesion@0.01,0.1", "vgg-16-gap", metric="ap",
                                 n_resamples=25)  # fmt: skip
    assert list(other["pair"]) == ["seed 0", "seed 1", "seed-averaged"] and "seeds [2]" in caplog.text
    assert other["method"].str.startswith("paired stratified bootstrap").all() and other["z"].isna().all()
    text = format_compare(frame, "attnmel+lesion@0.001,0.01", "vgg16_gap", "auc")
    first = frame.iloc[0]
    assert "test AUC: A = attnmel+lesion@0.001,0.01  vs  B = vgg16_gap" in text
    assert f"{first.metric_a:.3f}" in text and f"{first.delta:+.3f}" in text and f"{first.p:.3g}" in text
    assert "method: DeLong" in text


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
