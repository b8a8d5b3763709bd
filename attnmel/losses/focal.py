"""Focal loss (Lin et al., ICCV 2017), the paper's classification loss (Sect. 3.1)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["focal_loss"]


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Mean over the batch of ``-(1 - p_t)**gamma * log(p_t)``.

    ``logits`` (B, C), ``target`` (B,) class indices. ``p_t`` is the softmax probability of the
    true class; ``log p_t`` comes from ``log_softmax``, so confident logits neither overflow
    nor give ``log(0)``. ``gamma=0`` is cross-entropy; larger ``gamma`` down-weights easy
    (already well-classified) examples. No class weighting (alpha): the paper balances classes
    by oversampling instead.
    """
    if gamma < 0:
        raise ValueError(f"focal loss needs gamma >= 0, got {gamma}")
    log_pt = F.log_softmax(logits.float(), dim=1).gather(1, target.long().unsqueeze(1)).squeeze(1)  # (B,)
    if gamma == 0:
        return -log_pt.mean()
    # 1 - p_t as -expm1(log p_t): accurate when p_t is close to 1, where 1 - exp() cancels.
    # The floor keeps the gradient of x**gamma finite (gamma < 1) when p_t rounds to exactly 1;
    # there log p_t = 0, so the sample's loss is 0 either way.
    weight = (-log_pt.expm1()).clamp_min(1e-12).pow(gamma)  # (B,)
    return -(weight * log_pt).mean()
