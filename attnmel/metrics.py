"""Evaluation metrics: AP and AUC (the challenge metrics) and attention overlap.

``ap_auc`` gives scikit-learn's ``average_precision_score`` and ``roc_auc_score`` of the
melanoma probability, the functions the paper names (footnote 1), computed here with NumPy:
AUC in its Mann–Whitney form with midranks, AP as a sum over distinct score thresholds. The
tests hold both equal to scikit-learn's, ties included; computing them here keeps scikit-learn
(and the SciPy and pandas it imports, about a second) out of every training process, and lets
the bootstrap score whole blocks of resamples at once (``rows_auc``, ``rows_ap``).
``attention_jaccard`` follows the procedure behind the paper's Table 3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ap_auc", "average_precision", "roc_auc", "rows_ap", "rows_auc", "midranks",
    "attention_jaccard", "jaccard_per_image", "renormalised_maps",
]  # fmt: skip


ArrayLike = Sequence[float] | np.ndarray | Tensor


def _tie_groups(ranked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For values sorted along the last axis: the first and the last place of each value's
    group of equal values, per place."""
    n = ranked.shape[-1]
    place = np.broadcast_to(np.arange(n), ranked.shape)
    new = np.ones(ranked.shape, dtype=bool)  # a group starts here
    new[..., 1:] = ranked[..., 1:] != ranked[..., :-1]
    ends = np.ones(ranked.shape, dtype=bool)  # a group ends here
    ends[..., :-1] = new[..., 1:]
    start = np.maximum.accumulate(np.where(new, place, 0), axis=-1)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(ends, place, n), axis=-1), axis=-1), axis=-1)
    return start, end


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, tied values sharing the mean of their ranks."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, axis=-1, kind="stable")
    start, end = _tie_groups(np.take_along_axis(x, order, axis=-1))
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, (start + end) / 2 + 1, axis=-1)
    return ranks


def rows_auc(scores: np.ndarray, m: int) -> np.ndarray:
    """ROC AUC of each row of ``scores`` (rows × (m + n)) whose first ``m`` columns are the
    positives: the Mann–Whitney statistic with midranks (ties count ½), which is the area
    under the ROC curve that ``roc_auc_score`` integrates."""
    n = scores.shape[-1] - m
    return (midranks(scores)[..., :m].sum(axis=-1) - m * (m + 1) / 2) / (m * n)


def rows_ap(scores: np.ndarray, m: int) -> np.ndarray:
    """Average precision of each row of ``scores`` (positives first), as
    ``average_precision_score`` defines it: Σ_k (R_k − R_{k−1})·P_k over the distinct score
    thresholds, so tied scores enter together. Every positive adds 1/m of recall at the
    precision of the threshold that admits it, i.e. at the end of its group of ties."""
    order = np.argsort(-scores, axis=-1, kind="stable")
    positive = order < m
    precision = np.cumsum(positive, axis=-1) / np.arange(1, scores.shape[-1] + 1)
    _, group_end = _tie_groups(np.take_along_axis(-scores, order, axis=-1))
    return (positive * np.take_along_axis(precision, group_end, axis=-1)).sum(axis=-1) / m


def _positives_first(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, int]:
    positive = y == 1
    return np.concatenate([p[positive], p[~positive]])[None], int(positive.sum())


def roc_auc(y_true: np.ndarray, prob: np.ndarray) -> float:
    """``roc_auc_score`` of 0/1 labels (both classes present) and scores."""
    scores, m = _positives_first(np.asarray(y_true), np.asarray(prob, dtype=np.float64))
    return float(rows_auc(scores, m)[0])


def average_precision(y_true: np.ndarray, prob: np.ndarray) -> float:
    """``average_precision_score`` of 0/1 labels (at least one positive) and scores."""
    scores, m = _positives_first(np.asarray(y_true), np.asarray(prob, dtype=np.float64))
    return float(rows_ap(scores, m)[0])


def ap_auc(y_true: ArrayLike, prob: ArrayLike) -> tuple[float, float]:
    """``(average precision, ROC AUC)`` of melanoma (label 1) probabilities.

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
    y = (y == classes[1]).astype(np.int64)  # the larger label is the positive class, as in scikit-learn
    return average_precision(y, p), roc_auc(y, p)


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
