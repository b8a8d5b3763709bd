"""Evaluation metrics: AP and AUC (the challenge metrics), operating points and calibration,
in NumPy alone (no torch: the result commands import this module; the attention overlap of
Table 3 is :mod:`attnmel.attention_overlap`).

``ap_auc`` gives scikit-learn's ``average_precision_score`` and ``roc_auc_score`` of the
melanoma probability, the functions the paper names (footnote 1), computed here with NumPy:
AUC in its Mann–Whitney form with midranks, AP as a sum over distinct score thresholds. The
tests hold both equal to scikit-learn's, ties included; computing them here keeps scikit-learn
(and the SciPy and pandas it imports, about a second) out of every training process, and lets
the bootstrap score whole blocks of resamples at once (``resampled_auc``, ``resampled_ap``: a
resample is a row of per-image counts, so no resample is ever sorted). The ISIC 2017 challenge's
secondary metrics (specificity at 82, 89 and 95 % sensitivity, as its scorer takes them: at the
first ROC point whose sensitivity reaches the level), sensitivity at those specificities as an
extra, the Brier score and the expected calibration error are here too.
"""

from __future__ import annotations

from collections.abc import Sequence

from typing import Any

import numpy as np

__all__ = [
    "CALIBRATION_BINS", "OPERATING_SENSITIVITIES", "OPERATING_SPECIFICITIES", "specificity_at_sensitivity",
    "ap_auc", "average_precision", "roc_auc", "rows_ap", "rows_auc", "midranks", "resampled_auc", "resampled_ap",
    "sensitivity_at_specificity", "brier_score", "bin_index", "reliability_curve", "expected_calibration_error",
]  # fmt: skip

# The ISIC 2017 challenge's secondary metrics: specificity at these sensitivities.
OPERATING_SENSITIVITIES = (0.82, 0.89, 0.95)
# The same levels read the other way (sensitivity at these specificities): an extra, not the challenge's.
OPERATING_SPECIFICITIES = OPERATING_SENSITIVITIES
# Equal-width probability bins of the reliability curve and the expected calibration error.
CALIBRATION_BINS = 10


ArrayLike = Sequence[float] | np.ndarray | Any  # Any: a torch tensor too (see _plain)


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


def _plain(values: ArrayLike, float_tensor: bool = False) -> np.ndarray:
    """``values`` as a NumPy array; a torch tensor (anything with ``detach`` and ``cpu``) is
    detached and copied to the host first, in float32 when ``float_tensor`` (bf16 has no NumPy
    type). Duck-typed so that this module never imports torch."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach()
        values = (values.float() if float_tensor else values).cpu().numpy()
    return np.asarray(values)


def ap_auc(y_true: ArrayLike, prob: ArrayLike) -> tuple[float, float]:
    """``(average precision, ROC AUC)`` of melanoma (label 1) probabilities.

    Raises ``ValueError`` unless ``y_true`` holds both classes (neither metric is defined
    otherwise) or when the lengths differ.
    """
    y = _plain(y_true).ravel()
    p = _plain(prob, float_tensor=True).astype(np.float64, copy=False).ravel()
    if y.shape != p.shape:
        raise ValueError(f"ap_auc: {y.size} labels but {p.size} probabilities")
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError(
            f"ap_auc needs both classes (0 and 1) among the labels, got only {classes.tolist()} in {y.size} samples"
        )
    y = (y == classes[1]).astype(np.int64)  # the larger label is the positive class, as in scikit-learn
    return average_precision(y, p), roc_auc(y, p)


def _sorted_groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of ``score`` from high to low (stable) and, per place, whether a group of equal
    scores ends there."""
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    ends = np.ones(score.size, dtype=bool)
    ends[:-1] = ranked[1:] != ranked[:-1]
    return order, ends


def resampled_auc(y_true: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample of one model's scores: (B,) for ``counts`` (B, N), the number of
    times each of the N images is drawn in each resample.

    A resample's AUC is the Mann–Whitney statistic of its multiset: each positive i counts
    c_i times, and beats every drawn negative below it (ties ½). The negatives are sorted once;
    per resample only cumulative counts over that order are needed, O(B·N) without sorting a
    resample. Equals ``roc_auc_score`` on the materialised resample (``np.repeat``)."""
    y = np.asarray(y_true).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    counts = np.asarray(counts)
    pos, neg = score[y], score[~y]
    order = np.argsort(neg, kind="stable")
    below = np.searchsorted(neg[order], pos, side="left")  # negatives strictly below each positive
    upto = np.searchsorted(neg[order], pos, side="right")  # ... below or tied
    c_pos, c_neg = counts[:, y], counts[:, ~y][:, order]
    cum = np.zeros((counts.shape[0], neg.size + 1))
    np.cumsum(c_neg, axis=1, out=cum[:, 1:])
    wins = (c_pos * (cum[:, below] + cum[:, upto])).sum(axis=1) / 2
    return wins / (c_pos.sum(axis=1) * c_neg.sum(axis=1))


def resampled_ap(y_true: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average precision of each resample of one model's scores: (B,) for ``counts`` (B, N).

    Images are sorted by score once. A resample's AP is Σ_g ΔTP_g · TP_g / (TP_g + FP_g) / TP
    over the groups g of tied scores (copies of an image are tied with it, so they enter
    together, as in ``average_precision_score``); only groups holding a positive gain anything,
    and TP_g, FP_g are cumulative counts of the positives and of the negatives in score order,
    read where those groups end. Equals ``average_precision_score`` on the materialised resample."""
    y = np.asarray(y_true).astype(bool)
    counts = np.asarray(counts)
    order, ends = _sorted_groups(np.asarray(score, dtype=np.float64))
    ranked_y = y[order]
    group = np.cumsum(np.r_[True, ends[:-1]]) - 1  # group of each place in score order
    last = np.flatnonzero(ends)[np.unique(group[ranked_y])]  # where each group holding a positive ends
    positives_upto, negatives_upto = np.cumsum(ranked_y)[last], np.cumsum(~ranked_y)[last]
    rows = counts.shape[0]
    cum_pos = np.zeros((rows, int(ranked_y.sum()) + 1))
    np.cumsum(counts[:, order[ranked_y]], axis=1, out=cum_pos[:, 1:])
    cum_neg = np.zeros((rows, int((~ranked_y).sum()) + 1))
    np.cumsum(counts[:, order[~ranked_y]], axis=1, out=cum_neg[:, 1:])
    tp, admitted = cum_pos[:, positives_upto], cum_pos[:, positives_upto] + cum_neg[:, negatives_upto]
    gained = np.diff(tp, axis=1, prepend=0)
    # A group no copy reached gains no positive: its term is 0 whatever its precision.
    precision = np.divide(tp, admitted, out=np.zeros(tp.shape), where=admitted > 0)
    return (gained * precision).sum(axis=1) / cum_pos[:, -1]


def _check_labels(y_true: np.ndarray, prob: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and probabilities in [0, 1] (a NaN, or 1.2, is a ``ValueError``, never a number)."""
    y = np.asarray(y_true).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{what}: {y.size} labels but {p.size} probabilities")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{what}: labels must be 0 or 1 (melanoma = 1)")
    bad = ~((p >= 0.0) & (p <= 1.0))  # NaN fails both
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} probabilities are NaN or outside [0, 1] "
                         f"(first: {float(p[bad][0])!r})")
    return y.astype(np.int64), p


def _roc_points(y: np.ndarray, p: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold from high to low, from (0, 0), as ``roc_curve``
    gives them without dropping points; at least 2 images of each class."""
    m, n = int(y.sum()), int(y.size - y.sum())
    if m < 2 or n < 2:
        raise ValueError(f"{what} needs at least 2 melanoma and 2 other images, got {m} and {n}")
    order, ends = _sorted_groups(p)
    tpr = np.r_[0.0, np.cumsum(y[order])[ends] / m]
    fpr = np.r_[0.0, np.cumsum(1 - y[order])[ends] / n]
    return fpr, tpr


def specificity_at_sensitivity(y_true: np.ndarray, prob: np.ndarray, sensitivity: float) -> float:
    """Specificity at ``sensitivity``, the ISIC 2017 challenge's secondary metric as its scorer
    computes it: 1 − FPR at the first point of the ROC curve (thresholds from high to low) whose
    sensitivity reaches ``sensitivity``; no interpolation between points."""
    y, p = _check_labels(y_true, prob, "specificity_at_sensitivity")
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError(f"sensitivity must lie in [0, 1], got {sensitivity!r}")
    fpr, tpr = _roc_points(y, p, "specificity_at_sensitivity")
    return float(1.0 - fpr[int(np.argmax(tpr >= sensitivity))])


def sensitivity_at_specificity(y_true: np.ndarray, prob: np.ndarray, specificity: float) -> float:
    """Sensitivity of the ROC curve at ``specificity``: the challenge's levels read the other way
    (an extra; the challenge's metric is :func:`specificity_at_sensitivity`).

    The ROC curve is the one ``roc_curve`` returns (one point per distinct score threshold,
    from (0, 0) to (1, 1)) and the one AUC integrates: between two points it is a straight line
    (what a threshold chosen at random between the two achieves), so the sensitivity at
    false-positive rate f = 1 − specificity is linearly interpolated between the points that
    bracket f; where the curve rises vertically at exactly f, the top of that rise is taken.
    """
    y, p = _check_labels(y_true, prob, "sensitivity_at_specificity")
    if not 0.0 <= specificity <= 1.0:
        raise ValueError(f"specificity must lie in [0, 1], got {specificity!r}")
    fpr, tpr = _roc_points(y, p, "sensitivity_at_specificity")
    f = 1.0 - specificity
    i = int(np.searchsorted(fpr, f, side="right")) - 1  # last point at or left of f
    if fpr[i] == f or i == fpr.size - 1:
        return float(tpr[i])
    share = (f - fpr[i]) / (fpr[i + 1] - fpr[i])
    return float(tpr[i] + share * (tpr[i + 1] - tpr[i]))


def brier_score(y_true: np.ndarray, prob: np.ndarray) -> float:
    """Mean squared difference between the melanoma probability and the 0/1 label."""
    y, p = _check_labels(y_true, prob, "brier_score")
    return float(np.mean((p - y) ** 2))


def bin_index(p: np.ndarray, bins: int = CALIBRATION_BINS) -> np.ndarray:
    """Bin of each probability among ``bins`` equal-width bins of [0, 1]: (lo, hi], the first
    [0, hi] (scikit-learn's ``calibration_curve`` rule, so the curves agree)."""
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    return np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p, side="left")


def reliability_curve(
    y_true: np.ndarray, prob: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(observed, predicted, count)`` per non-empty bin: the share of melanomas, the mean
    probability and the number of images, over ``bins`` equal-width bins of [0, 1]."""
    y, p = _check_labels(y_true, prob, "reliability_curve")
    which = bin_index(p, bins)
    count = np.bincount(which, minlength=bins)
    keep = count > 0
    observed = np.bincount(which, weights=y, minlength=bins)[keep] / count[keep]
    predicted = np.bincount(which, weights=p, minlength=bins)[keep] / count[keep]
    return observed, predicted, count[keep]


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Σ_b (n_b / N)·|share of melanomas in b − mean probability in b| over ``bins``
    equal-width bins of [0, 1] (the bins of :func:`reliability_curve`)."""
    observed, predicted, count = reliability_curve(y_true, prob, bins)
    return float(np.sum(count * np.abs(observed - predicted)) / count.sum())
