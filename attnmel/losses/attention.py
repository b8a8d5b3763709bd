"""Eq. 5 of the paper: the training objective of every variant in one function.

    L = L_focal(ŷ, y) + λ1 · L_Dice(A3, Ā3) + λ2 · L_Dice(A4, Ā4)

Ā is the ROI reference map brought to each attention map's resolution. Without an ROI (or for
variants without attention) only the classification term remains.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnmel.config import LossConfig
from attnmel.losses.dice import batch_dice_loss, downsample_reference
from attnmel.losses.focal import focal_loss

__all__ = ["LossTerms", "attnmel_loss"]

_DEFAULTS = LossConfig()  # the loss settings' defaults (the paper's) have one owner: the config


class LossTerms(NamedTuple):
    total: Tensor  # what is back-propagated
    cls: Tensor  # focal (or cross-entropy) term
    dice3: Tensor  # L_Dice(A3, Ā3); 0 without an ROI
    dice4: Tensor  # L_Dice(A4, Ā4)


def attnmel_loss(
    logits: Tensor,
    target: Tensor,
    attn: tuple[Tensor | None, Tensor | None] = (None, None),
    roi: Tensor | None = None,
    *,
    kind: str = _DEFAULTS.kind,
    gamma: float = _DEFAULTS.gamma,
    lambda1: float = _DEFAULTS.lambda1,
    lambda2: float = _DEFAULTS.lambda2,
) -> LossTerms:
    """Eq. 5 on one batch. ``logits`` (B, 2); ``attn`` the (A3, A4) maps (B, 1, h, w) or Nones;
    ``roi`` the augmented input-sized reference (B, 1, H, W) or None. Computed in float32. The
    defaults are :class:`~attnmel.config.LossConfig`'s."""
    logits = logits.float()
    cls = nn.functional.cross_entropy(logits, target) if kind == "ce" else focal_loss(logits, target, gamma=gamma)
    zero = torch.zeros((), device=logits.device)
    if roi is None or attn[0] is None or attn[1] is None:
        return LossTerms(cls, cls, zero, zero)
    a3, a4 = attn[0].float(), attn[1].float()
    dice3 = batch_dice_loss(a3, downsample_reference(roi, a3.shape[-2:]))
    dice4 = batch_dice_loss(a4, downsample_reference(roi, a4.shape[-2:]))
    return LossTerms(cls + lambda1 * dice3 + lambda2 * dice4, cls, dice3, dice4)
