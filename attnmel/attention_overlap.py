"""Attention overlap with the lesion masks (the procedure behind the paper's Table 3), in torch:
each map min-max re-normalised, upsampled bilinearly to the mask, binarised and compared by
the Jaccard index. Its own module so that the NumPy metrics (:mod:`attnmel.metrics`), which
the result commands import, never import torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["attention_jaccard", "jaccard_per_image", "renormalised_maps"]


def attention_jaccard(attn: Tensor, lesion: Tensor, threshold: float = 0.5) -> float:
    """Mean Jaccard index between binarised attention maps and lesion masks (Table 3);
    see :func:`jaccard_per_image`."""
    return float(jaccard_per_image(attn, lesion, threshold).mean())


def renormalised_maps(attn: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Min-max re-normalise each map (B, 1, h, w) to [0, 1], then upsample it bilinearly to
    ``size``: how the paper shows and scores attention (section 3.3). Constant maps become 0."""
    a = attn.detach().float()
    lo = a.amin(dim=(2, 3), keepdim=True)
    span = a.amax(dim=(2, 3), keepdim=True) - lo
    tiny = torch.finfo(a.dtype).tiny
    a = torch.where(span > 0, (a - lo) / span.clamp_min(tiny), torch.zeros_like(a))
    return F.interpolate(a, size=tuple(size), mode="bilinear", align_corners=False)


def jaccard_per_image(attn: Tensor, lesion: Tensor, threshold: float = 0.5) -> Tensor:
    """Jaccard index of each binarised attention map with its lesion mask: (B,) float64.

    Per image: min-max re-normalise the map (B, 1, h, w) to [0, 1], upsample it bilinearly to
    the mask's size (B, 1, H, W), binarise at ``threshold`` (``>=``) and take |P∩M| / |P∪M|.
    A constant map highlights nothing (all zero after re-normalisation); an image where both
    the prediction and the mask are empty counts as 1 (they agree).
    """
    if attn.dim() != 4 or attn.shape[1] != 1 or lesion.dim() != 4 or lesion.shape[1] != 1:
        raise ValueError(
            "expected (B, 1, h, w) maps and (B, 1, H, W) masks, "
            f"got {tuple(attn.shape)} and {tuple(lesion.shape)}"
        )
    if attn.shape[0] != lesion.shape[0]:
        raise ValueError(f"{attn.shape[0]} attention maps but {lesion.shape[0]} masks")
    pred = renormalised_maps(attn, lesion.shape[-2:]) >= threshold  # (B, 1, H, W)
    mask = lesion.to(pred.device) > 0
    inter = (pred & mask).sum(dim=(1, 2, 3)).double()
    union = (pred | mask).sum(dim=(1, 2, 3)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).cpu()
