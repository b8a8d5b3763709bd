"""Evaluation metrics: AP and AUC (the challenge metrics, via scikit-learn) and attention overlap.

``ap_auc`` uses exactly the scikit-learn functions the paper names (footnote 1), on the
melanoma probability. ``attention_jaccard`` follows the procedure behind the paper's Table 3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import Tensor

__all__ = ["ap_auc", "attention_jaccard", "jaccard_per_image", "renormalised_maps"]


ArrayLike = Sequence[float] | np.ndarray | Tensor


def ap_auc(y_true: ArrayLike, prob: ArrayLike) -> tuple[float, float]:
    """``(average_precision_score, roc_auc_score)`` of melanoma (label 1) probabilities.

    Raises ``ValueError`` unless ``y_true`` holds both classes (neither metric is defined
    otherwise) or when the lengths differ.
    """
    y = np.asarray(y_true.cpu() if isinstance(y_true, Tensor) else y_true).ravel()
    p = np.asarray(prob.detach().float().cpu() if isinstance(prob, Tensor) else prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"ap_auc: {y.size} labels but {p.size} probabilities")
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError(
            f"ap_auc needs both classes (0 and 1) among the labels, got only {classes.tolist()} in {y.size} samples"
        )
    return float(average_precision_score(y, p)), float(roc_auc_score(y, p))


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
    a = torch.where(span > 0, (a - lo) / span.clamp_min(torch.finfo(a.dtype).tiny), torch.zeros_like(a))
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
            f"expected (B, 1, h, w) maps and (B, 1, H, W) masks, got {tuple(attn.shape)} and {tuple(lesion.shape)}"
        )
    if attn.shape[0] != lesion.shape[0]:
        raise ValueError(f"{attn.shape[0]} attention maps but {lesion.shape[0]} masks")
    pred = renormalised_maps(attn, lesion.shape[-2:]) >= threshold  # (B, 1, H, W)
    mask = lesion.to(pred.device) > 0
    inter = (pred & mask).sum(dim=(1, 2, 3)).double()
    union = (pred | mask).sum(dim=(1, 2, 3)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).cpu()
