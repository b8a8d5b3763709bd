"""AP/AUC against scikit-learn and hand computations; attention Jaccard (Table 3 procedure)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from attnmel.attention_overlap import attention_jaccard
from attnmel.metrics import ap_auc, midranks


def test_equals_scikit_learn_on_fixed_vectors():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    prob = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1).round(2)  # rounded: ties included
    ap, auc = ap_auc(y, prob)
    assert ap == pytest.approx(average_precision_score(y, prob), abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(y, prob), abs=1e-12)
    # AUC = P(score of a positive > score of a negative) + ½ P(tie), counted pair by pair.
    pos, neg = prob[y == 1], prob[y == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auc == pytest.approx(pairs)


@pytest.mark.parametrize("levels", [None, 3, 10])  # continuous scores, then heavy ties
def test_equals_scikit_learn_over_many_random_sets(levels):
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        y[:2] = (0, 1)  # both classes
        prob = rng.random(n) + 0.5 * y * rng.random()
        if levels:
            prob = np.round(prob * levels) / levels
        ap, auc = ap_auc(y, prob)
        assert ap == pytest.approx(average_precision_score(y, prob), abs=1e-12)
        assert auc == pytest.approx(roc_auc_score(y, prob), abs=1e-12)


def test_midranks_share_the_mean_rank_of_ties():
    assert midranks(np.array([0.5, 0.1, 0.5, 0.9])).tolist() == [2.5, 1.0, 2.5, 4.0]
    rows = midranks(np.array([[3.0, 3.0, 3.0], [2.0, 1.0, 0.0]]))
    assert rows.tolist() == [[2.0, 2.0, 2.0], [3.0, 2.0, 1.0]]


def test_hand_computed_values():
    # Ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-). AUC: 3 of 4 positive/negative pairs ordered.
    # AP: recall 0.5 at precision 1, recall 1 at precision 2/3 → 0.5·1 + 0.5·2/3.
    ap, auc = ap_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert auc == pytest.approx(0.75) and ap == pytest.approx(0.5 + 1 / 3)


def test_accepts_tensors():
    y, prob = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0.2, 0.9, 0.4, 0.5, 0.7])
    assert ap_auc(y, prob) == ap_auc(y.numpy(), prob.numpy())
    low = prob.to(torch.bfloat16).requires_grad_()  # no NumPy dtype, and a graph to detach from
    assert ap_auc(y, low) == ap_auc(y.numpy(), low.detach().float().numpy())


def test_one_class_is_a_clear_error():
    with pytest.raises(ValueError, match="both classes"):
        ap_auc([0, 0, 0], [0.1, 0.2, 0.3])


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="labels"):
        ap_auc([0, 1, 1], [0.1, 0.2])


def _right_half_mask(n: int = 1, size: int = 4, first_col: int = 2) -> torch.Tensor:
    mask = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    mask[..., first_col:] = 1
    return mask


def test_jaccard_hand_case():
    # A 2×2 map high on its right column, upsampled bilinearly to 4×4 (align_corners=False):
    # columns read 0, 0.25, 0.75, 1 of the range, so ">= 0.5" selects columns 2–3.
    attn = torch.tensor([[0.2, 0.6], [0.2, 0.6]]).view(1, 1, 2, 2)
    assert attention_jaccard(attn, _right_half_mask()) == pytest.approx(1.0)
    assert attention_jaccard(attn, _right_half_mask(first_col=1)) == pytest.approx(8 / 12)
    # Mean over images: 1 and 8/12.
    two = torch.cat([attn, attn])
    masks = torch.cat([_right_half_mask(), _right_half_mask(first_col=1)])
    assert attention_jaccard(two, masks) == pytest.approx((1 + 8 / 12) / 2)


def test_jaccard_ignores_the_scale_of_each_map():
    gen = torch.Generator().manual_seed(0)
    attn = torch.rand(3, 1, 7, 7, generator=gen)
    mask = (torch.rand(3, 1, 56, 56, generator=gen) > 0.6).to(torch.uint8)
    rescaled = attn * torch.tensor([2.0, 0.1, 5.0]).view(3, 1, 1, 1) + torch.tensor([0.3, -1.0, 0.0]).view(3, 1, 1, 1)
    assert attention_jaccard(rescaled, mask) == pytest.approx(attention_jaccard(attn, mask))


def test_jaccard_of_constant_maps():
    flat = torch.full((1, 1, 2, 2), 0.7)
    assert attention_jaccard(flat, _right_half_mask()) == 0.0  # highlights nothing
    assert attention_jaccard(flat, torch.zeros(1, 1, 4, 4)) == 1.0  # nothing to find, nothing found


# --------------------------------------------------------------------------- operating points, calibration


def _independent_sensitivity(y, prob, specificity):
    """Read off scikit-learn's ROC curve: walk its points, interpolate linearly inside the segment
    that crosses fpr = 1 − specificity, and take the top of a vertical rise at exactly that fpr."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, prob, drop_intermediate=False)
    target = 1 - specificity
    best = 0.0
    for k in range(len(fpr)):
        if fpr[k] <= target:
            best = max(best, tpr[k])
        if k + 1 < len(fpr) and fpr[k] < target < fpr[k + 1]:
            best = max(best, tpr[k] + (target - fpr[k]) / (fpr[k + 1] - fpr[k]) * (tpr[k + 1] - tpr[k]))
    return best


@pytest.mark.parametrize("levels", [None, 4, 20])
def test_sensitivity_at_specificity_reads_the_roc_curve(levels):
    from attnmel.metrics import OPERATING_SPECIFICITIES, sensitivity_at_specificity

    rng = np.random.default_rng(3)
    for _ in range(60):
        n = int(rng.integers(5, 80))
        y = rng.integers(0, 2, n)
        y[:4] = (0, 1, 0, 1)
        prob = rng.random(n) * 0.7 + 0.3 * y
        if levels:
            prob = np.round(prob * levels) / levels
        for spec in (*OPERATING_SPECIFICITIES, 0.0, 0.5, 1.0):
            assert sensitivity_at_specificity(y, prob, spec) == pytest.approx(_independent_sensitivity(y, prob, spec),
                                                                              abs=1e-12)  # fmt: skip
    assert sensitivity_at_specificity([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.95) == 1.0
    with pytest.raises(ValueError, match="at least 2 melanoma and 2 other images, got 2 and 0"):
        sensitivity_at_specificity([1, 1], [0.2, 0.3], 0.9)


@pytest.mark.parametrize("levels", [None, 3, 10])  # continuous scores, and heavy ties
def test_specificity_at_sensitivity_is_the_isic_2017_scorers(levels):
    """The challenge's secondary metric: walk scikit-learn's ROC curve (every threshold kept) from
    the highest threshold and take 1 − FPR at the first point whose sensitivity reaches the level."""
    from sklearn.metrics import roc_curve

    from attnmel.metrics import OPERATING_SENSITIVITIES, specificity_at_sensitivity

    rng = np.random.default_rng(5)
    for _ in range(80):
        n = int(rng.integers(6, 120))
        y = rng.integers(0, 2, n)
        y[:4] = (0, 1, 0, 1)
        prob = rng.random(n) * 0.6 + 0.4 * y * rng.random(n)
        if levels:
            prob = np.round(prob * levels) / levels
        fpr, tpr, _ = roc_curve(y, prob, drop_intermediate=False)
        for level in (*OPERATING_SENSITIVITIES, 0.0, 0.5, 1.0):
            first = next(i for i, t in enumerate(tpr) if t >= level)
            assert specificity_at_sensitivity(y, prob, level) == pytest.approx(1 - fpr[first], abs=1e-12)


def test_operating_points_and_calibration_refuse_what_is_not_a_probability():
    from attnmel.metrics import brier_score, expected_calibration_error, specificity_at_sensitivity

    y = np.array([0, 1, 0, 1, 1])
    for bad, shown in ((np.nan, "nan"), (1.2, "1.2"), (-0.1, "-0.1")):
        p = np.array([0.1, 0.9, bad, 0.7, 0.6])
        for fn in (brier_score, expected_calibration_error):
            with pytest.raises(ValueError, match=rf"1 probabilities are NaN or outside \[0, 1\] \(first: {shown}"):
                fn(y, p)
        with pytest.raises(ValueError, match="NaN or outside"):
            specificity_at_sensitivity(y, p, 0.82)
    with pytest.raises(ValueError, match="at least 2 melanoma and 2 other images, got 1 and 4"):
        specificity_at_sensitivity([1, 0, 0, 0, 0], [0.9, 0.1, 0.2, 0.3, 0.4], 0.82)


def test_brier_reliability_and_ece_equal_scikit_learn():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    from attnmel.metrics import brier_score, expected_calibration_error, reliability_curve

    rng = np.random.default_rng(4)
    for bins in (5, 10, 15):
        y = rng.integers(0, 2, 400)
        prob = np.clip(0.4 * y + 0.6 * rng.random(400), 0, 1)
        prob[:12] = np.linspace(0, 1, bins + 1)[np.arange(12) % (bins + 1)]  # values on the bin edges
        assert brier_score(y, prob) == pytest.approx(brier_score_loss(y, prob), abs=1e-15)
        observed, predicted, count = reliability_curve(y, prob, bins)
        want_observed, want_predicted = calibration_curve(y, prob, n_bins=bins, strategy="uniform")
        assert np.allclose(observed, want_observed, atol=1e-15) and np.allclose(predicted, want_predicted, atol=1e-15)
        assert count.sum() == 400
        ece = sum(c / 400 * abs(o - q) for o, q, c in zip(want_observed, want_predicted, count))
        assert expected_calibration_error(y, prob, bins) == pytest.approx(ece, abs=1e-15)
    assert expected_calibration_error([0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0]) == 0.0


def test_resampled_metrics_equal_scikit_learn_on_materialised_resamples():
    from attnmel.metrics import resampled_ap, resampled_auc

    rng = np.random.default_rng(5)
    for _ in range(40):
        n = int(rng.integers(4, 50))
        y = rng.integers(0, 2, n)
        y[:2] = (0, 1)
        prob = np.round(rng.random(n) * 4) / 4 + 0.2 * y
        counts = rng.integers(0, 3, (6, n))
        counts[:, 0] += 1
        counts[:, 1] += 1  # both classes in every resample
        auc, ap = resampled_auc(y, prob, counts), resampled_ap(y, prob, counts)
        for k, row in enumerate(counts):
            assert auc[k] == pytest.approx(roc_auc_score(np.repeat(y, row), np.repeat(prob, row)), abs=1e-12)
            assert ap[k] == pytest.approx(average_precision_score(np.repeat(y, row), np.repeat(prob, row)), abs=1e-12)
