"""Focal loss: the cross-entropy identity, the formula, down-weighting, numerical stability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnmel.losses import focal_loss


def _batch(n: int = 16, scale: float = 3.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=gen) * scale, torch.randint(0, 2, (n,), generator=gen)


@pytest.mark.parametrize("scale", [0.1, 3.0, 50.0])
def test_gamma_zero_is_cross_entropy(scale):
    logits, target = _batch(scale=scale)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
def test_matches_the_definition_in_float64(gamma):
    logits, target = _batch(scale=2.0, seed=1)
    p_t = torch.softmax(logits.double(), dim=1)[torch.arange(len(target)), target]
    expected = (-((1 - p_t) ** gamma) * torch.log(p_t)).mean()
    torch.testing.assert_close(focal_loss(logits, target, gamma=gamma).double(), expected, rtol=1e-5, atol=1e-7)


def test_is_the_mean_over_the_batch():
    logits, target = _batch(n=6, seed=2)
    each = torch.stack([focal_loss(logits[i : i + 1], target[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(focal_loss(logits, target), each.mean())


def test_down_weights_easy_examples():
    """Per example, focal / cross-entropy = (1 - p_t)^gamma: below 1, shrinking as p_t grows."""
    margins = torch.linspace(-4, 6, 21)  # true-class logit minus the other one: hard → easy
    logits = torch.stack([torch.zeros_like(margins), margins], dim=1)
    target = torch.ones(len(margins), dtype=torch.long)
    focal = torch.stack([focal_loss(logits[i : i + 1], target[i : i + 1], gamma=2.0) for i in range(len(margins))])
    ce = F.cross_entropy(logits, target, reduction="none")
    ratio = focal / ce
    assert (ratio < 1).all() and (ratio > 0).all()
    assert (ratio[1:] < ratio[:-1]).all()  # easier → relatively smaller
    assert ratio[0] > 0.9 and ratio[-1] < 1e-4  # hard examples keep (almost) full weight


def test_confident_logits_stay_finite_with_finite_gradients():
    logits = torch.tensor([[1e4, -1e4], [1e4, -1e4], [30.0, 0.0]], requires_grad=True)
    target = torch.tensor([0, 1, 0])  # right and certain, wrong and certain, right (p_t rounds to 1)
    for gamma in (0.5, 2.0):
        loss = focal_loss(logits, target, gamma=gamma)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        torch.testing.assert_close(loss, torch.tensor(2e4 / 3), rtol=1e-4, atol=0.0)  # only the wrong one counts


def test_bf16_logits_give_a_float32_loss():
    logits, target = _batch(seed=3)
    loss = focal_loss(logits.bfloat16(), target)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, focal_loss(logits.bfloat16().float(), target))


def test_negative_gamma_is_rejected():
    logits, target = _batch()
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, target, gamma=-1.0)
