"""Splits made from a training split: label-stratified, and by group where images share a
lesion or a patient (so no lesion or patient is in two splits).

``stratified_subset`` is the ISIC 2016 rule (and the ``max_train``/``max_eval`` subsets); a
single ungrouped carving through :func:`carve` is exactly it, so ISIC 2016's validation split
is the one of earlier versions for the same seed. Grouped carving assigns whole groups, the
largest first, each to the split whose per-class shortfall it fills best (the squared
distance to every split's target count per class, each class weighted by one over its size so
the rare class counts as much as the common one); the many small groups that come last
settle each class's count to within about one image of its target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from attnmel.errors import UserError

__all__ = ["stratified_subset", "carve", "CarveError"]


class CarveError(UserError):
    """The requested split cannot be made from these images (too few groups of a class)."""


def stratified_subset(labels: list[int], fraction_or_count: float | int, seed: int) -> np.ndarray:
    """Sorted indices of a label-stratified random subset.

    ``fraction_or_count``: a float is a fraction of ``len(labels)``, an int a total count.
    Classes keep their shares (largest-remainder rounding, so the total is exact), and every
    class with two or more members gets at least one place when the subset has room for
    all classes, so both classes stay present even in a tiny subset.
    """
    labels_a = np.asarray(labels)
    n = len(labels_a)
    total = round(fraction_or_count * n) if isinstance(fraction_or_count, float) else int(fraction_or_count)
    total = max(0, min(n, total))
    classes = sorted(set(labels_a.tolist()))
    members = {c: np.flatnonzero(labels_a == c) for c in classes}
    exact = {c: total * len(members[c]) / n for c in classes} if n else {}
    shares = {c: int(exact[c]) for c in classes}
    by_remainder = sorted(classes, key=lambda c: (-(exact[c] - shares[c]), c))
    for c in by_remainder[: total - sum(shares.values())]:
        shares[c] += 1
    if len(classes) <= total < n:
        for c in classes:
            if shares[c] == 0 and len(members[c]) >= 2:
                donor = max(classes, key=lambda d: shares[d])
                shares[donor] -= 1
                shares[c] = 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(members[c])[: shares[c]] for c in classes]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _ungrouped(labels: np.ndarray, shares: Mapping[str, float], seed: int) -> dict[str, np.ndarray]:
    """One stratified subset after another; the first is ``stratified_subset(labels, share, seed)``."""
    left = np.arange(len(labels))
    out = {}
    for k, (split, share) in enumerate(shares.items()):
        count: float | int = float(share) if k == 0 else int(round(share * len(labels)))
        picked = left[stratified_subset(labels[left].tolist(), count, seed + k)]
        out[split] = picked
        left = np.setdiff1d(left, picked)
    return out


def _grouped(labels: np.ndarray, groups: Sequence[str], shares: Mapping[str, float], seed: int, group_name: str
             ) -> dict[str, np.ndarray]:  # fmt: skip
    names, group_of = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    counts = np.zeros((len(names), 2), dtype=np.int64)  # per group: other, melanoma
    np.add.at(counts, (group_of, labels), 1)
    bins = [*shares, "train"]
    share = np.array([*shares.values(), 1.0 - sum(shares.values())])
    totals = counts.sum(axis=0)
    for cls, what in ((1, "melanoma"), (0, "other")):
        holding = int((counts[:, cls] > 0).sum())
        if holding < len(bins):
            raise CarveError(
                f"cannot carve {' and '.join(shares)} by {group_name}: only {holding} {group_name} group(s) hold a "
                f"{what} image, and each of the {len(bins)} splits ({', '.join(bins)}) needs one"
            )
    target = share[:, None] * totals[None, :]  # (bins, classes)
    weight = 1.0 / np.maximum(totals, 1)
    placed = np.zeros_like(target)
    order = np.random.default_rng(seed).permutation(len(names))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]  # largest first, ties at random
    where = np.empty(len(names), dtype=np.int64)
    for g in order:
        # increase of the weighted squared distance to the targets if group g joins each bin
        delta = (((placed + counts[g] - target) ** 2 - (placed - target) ** 2) * weight).sum(axis=1)
        b = int(np.argmin(delta))
        where[g] = b
        placed[b] += counts[g]
    _refine(where, counts, target, weight)
    out = {}
    for b, split in enumerate(bins[:-1]):
        members = np.flatnonzero(where[group_of] == b)
        if len(set(labels[members].tolist())) < 2:
            raise CarveError(f"cannot carve {split} by {group_name}: it would hold only one class "
                             f"(raise data.{split}_fraction or use more images)")  # fmt: skip
        out[split] = members
    if len(set(labels[np.flatnonzero(where[group_of] == len(bins) - 1)].tolist())) < 2:
        raise CarveError(f"cannot carve {' and '.join(shares)} by {group_name}: training would hold only one class")
    return out


def _refine(where: np.ndarray, counts: np.ndarray, target: np.ndarray, weight: np.ndarray, rounds: int = 1000) -> None:
    """Improve a greedy assignment in place: move one group, or swap two, between splits while
    that lowers the weighted squared distance to the targets (groups with equal class counts
    are interchangeable, so only distinct count pairs are tried)."""
    bins = target.shape[0]
    for _ in range(rounds):
        placed = np.stack([counts[where == b].sum(axis=0) for b in range(bins)]).astype(float)
        best, change = -1e-9, None
        kinds = {b: np.unique(counts[where == b], axis=0) for b in range(bins)}
        for a in range(bins):
            for b in range(bins):
                if a == b or not len(kinds[a]):
                    continue
                base = ((placed[a] - target[a]) ** 2 * weight).sum() + ((placed[b] - target[b]) ** 2 * weight).sum()
                # move a group of each kind from a to b (d = -u), or swap it for one of each kind in b
                takes = kinds[a][:, None, :]  # (U, 1, C)
                gives = np.concatenate([np.zeros((1, counts.shape[1])), kinds[b]])[None, :, :]  # (1, V+1, C)
                d = gives - takes  # change of a's counts
                cost = (((placed[a] + d - target[a]) ** 2 * weight).sum(-1)
                        + ((placed[b] - d - target[b]) ** 2 * weight).sum(-1)) - base  # fmt: skip
                u, v = np.unravel_index(int(np.argmin(cost)), cost.shape)
                if cost[u, v] < best:
                    best, change = cost[u, v], (a, b, kinds[a][u], None if v == 0 else kinds[b][v - 1])
        if change is None:
            return
        a, b, take, give = change
        where[np.flatnonzero((where == a) & (counts == take).all(axis=1))[0]] = b
        if give is not None:
            where[np.flatnonzero((where == b) & (counts == give).all(axis=1))[0]] = a


def carve(
    labels: Sequence[int], shares: Mapping[str, float], seed: int, *, groups: Sequence[str] | None = None,
    group_name: str = "group",
) -> dict[str, np.ndarray]:  # fmt: skip
    """Sorted indices of each carved split (``shares``: split → share of all images, in order);
    the images left over stay in training. With ``groups`` (one per image) every group lands
    in one split. A split that cannot be made is a :class:`CarveError`."""
    labels_a = np.asarray(labels, dtype=np.int64)
    if sum(shares.values()) >= 1:
        raise CarveError(f"the carved shares ({', '.join(f'{k} {v}' for k, v in shares.items())}) leave no training split")
    if groups is None:
        return {k: np.sort(v) for k, v in _ungrouped(labels_a, shares, seed).items()}
    if len(groups) != len(labels_a):
        raise ValueError(f"{len(groups)} groups for {len(labels_a)} labels")
    return {k: np.sort(v) for k, v in _grouped(labels_a, groups, shares, seed, group_name).items()}
