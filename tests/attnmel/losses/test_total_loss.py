"""Eq. 5, the paper's training objective, computed from its definition and compared with
``attnmel_loss``: total = focal + λ1·Dice(A3, Ā3) + λ2·Dice(A4, Ā4), with Ā the input-sized ROI
averaged over each attention cell and the Dice sums over the whole batch (Eq. 4)."""

from __future__ import annotations

import math

import pytest
import torch

from attnmel.losses import attnmel_loss


def _focal_by_hand(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> float:
    total = 0.0
    for row, y in zip(logits.tolist(), target.tolist()):
        p = math.exp(row[y]) / sum(math.exp(v) for v in row)
        total += -((1 - p) ** gamma) * math.log(p)
    return total / len(target)


def _cell_means(roi: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Each (H/h × W/w) block of the reference averaged: the soft Ā of one attention cell."""
    b, _, big_h, big_w = roi.shape
    return roi.reshape(b, 1, h, big_h // h, w, big_w // w).mean(dim=(3, 5))


def _dice_by_hand(attn: torch.Tensor, ref: torch.Tensor) -> float:
    a, r = attn.double().flatten().tolist(), ref.double().flatten().tolist()
    return 1 - 2 * sum(x * y for x, y in zip(a, r)) / sum(x + y for x, y in zip(a, r))


@pytest.mark.parametrize("lambda1, lambda2", [(0.001, 0.01), (0.5, 2.0), (0.0, 0.0)])
def test_total_is_focal_plus_weighted_dice_of_both_maps(lambda1, lambda2):
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(6, 2, generator=gen) * 2
    target = torch.tensor([0, 1, 1, 0, 1, 0])
    a3 = torch.rand(6, 1, 4, 4, generator=gen)  # pool-3 attention of a 32 px crop
    a4 = torch.rand(6, 1, 2, 2, generator=gen)  # pool-4
    roi = (torch.rand(6, 1, 32, 32, generator=gen) > 0.6).float()
    roi[2] = 0  # an image whose ROI is empty: the batch sums keep Dice defined

    terms = attnmel_loss(logits, target, (a3, a4), roi, gamma=2.0, lambda1=lambda1, lambda2=lambda2)

    focal = _focal_by_hand(logits, target, 2.0)
    dice3 = _dice_by_hand(a3, _cell_means(roi, 4, 4))
    dice4 = _dice_by_hand(a4, _cell_means(roi, 2, 2))
    assert terms.cls.item() == pytest.approx(focal, rel=1e-5)
    assert (terms.dice3.item(), terms.dice4.item()) == (pytest.approx(dice3, rel=1e-5), pytest.approx(dice4, rel=1e-5))
    assert terms.total.item() == pytest.approx(focal + lambda1 * dice3 + lambda2 * dice4, rel=1e-5)


def test_without_a_roi_only_the_classification_term_remains():
    logits, target = torch.tensor([[2.0, -1.0], [0.5, 0.7]]), torch.tensor([0, 1])
    maps = (torch.rand(2, 1, 4, 4), torch.rand(2, 1, 2, 2))
    plain = attnmel_loss(logits, target, maps, None, lambda1=1.0, lambda2=1.0)
    assert plain.total.item() == pytest.approx(_focal_by_hand(logits, target, 2.0), rel=1e-6)
    assert plain.dice3.item() == plain.dice4.item() == 0.0
    ce = attnmel_loss(logits, target, kind="ce")  # the paper's ablation: cross-entropy instead of focal
    assert ce.total.item() == pytest.approx(_focal_by_hand(logits, target, 0.0), rel=1e-6)


def test_the_dice_terms_pull_attention_towards_the_roi():
    roi = torch.zeros(1, 1, 32, 32)
    roi[..., :16, :16] = 1  # the top-left quarter
    a3 = torch.full((1, 1, 4, 4), 0.5, requires_grad=True)
    terms = attnmel_loss(torch.zeros(1, 2), torch.tensor([1]), (a3, torch.full((1, 1, 2, 2), 0.5)), roi,
                         lambda1=1.0, lambda2=0.0)  # fmt: skip
    terms.total.backward()
    inside, outside = a3.grad[0, 0, :2, :2], a3.grad[0, 0, 2:, 2:]
    assert (inside < 0).all() and (outside > 0).all()  # gradient descent raises attention inside, lowers it outside
