"""AP/AUC against scikit-learn and hand computations; attention Jaccard (Table 3 procedure)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from attnmel.metrics import ap_auc, attention_jaccard, midranks


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
