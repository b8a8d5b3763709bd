"""Dice regulariser of the attention maps (Eq. 4), computed over the whole batch at once."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["batch_dice_loss", "downsample_reference"]

# Keeps 0/0 finite when both the attention and the reference are all zero; far below any real
# sum (an attention map of one 7×7 image already sums to > 1e-3 unless it is essentially zero).
_EPS = 1e-7


def batch_dice_loss(attn: Tensor, ref: Tensor) -> Tensor:
    """``1 - 2·Σ(a·ā) / Σ(a + ā)`` with the sums over every element of the batch tensor.

    ``attn`` (B, 1, h, w) in (0, 1); ``ref`` the reference map of the same shape (soft values
    allowed). The paper sums over the batch, never per image, so images whose reference is
    empty do not divide by zero. Computed in float32 (bf16 sums over a batch lose digits).
    """
    if attn.shape != ref.shape:
        raise ValueError(f"attention {tuple(attn.shape)} and reference {tuple(ref.shape)} differ in shape")
    a, r = attn.float(), ref.float()
    return 1.0 - 2.0 * (a * r).sum() / ((a + r).sum() + _EPS)


def downsample_reference(ref: Tensor, size: tuple[int, int] | list[int]) -> Tensor:
    """Bring an input-sized reference map (B, 1, H, W) to an attention map's (h, w).

    Adaptive average pooling, so a cell partly covered by the ROI gets the covered fraction
    (a soft value in [0, 1]) instead of an aliased 0 or 1.
    """
    return F.adaptive_avg_pool2d(ref.float(), tuple(size))  # (B, 1, h, w)
