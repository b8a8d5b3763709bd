"""Carved splits: grouped carvings never put a group in two splits and keep each class's count
within one image of its share (property tests over many seeds); an ungrouped carving is the
ISIC 2016 rule exactly; impossible carvings are one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from attnmel.data.carving import CarveError, carve, stratified_subset
from attnmel.data.layout import load_splits
from attnmel.data.synth import write_synthetic


def _grouped_data(seed: int, low: int, high: int) -> tuple[np.ndarray, list[str]]:
    """Groups of ``low``..``high`` images; a third of the groups prone to melanoma, like patients."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(low, high + 1, size=int(rng.integers(40, 160)))
    groups = np.repeat([f"g{i}" for i in range(len(sizes))], sizes)
    rate = np.repeat(rng.choice([0.05, 0.5], size=len(sizes), p=[2 / 3, 1 / 3]), sizes)
    return (rng.random(len(groups)) < rate).astype(int), list(groups)


@pytest.mark.parametrize("low, high", [(1, 4), (2, 6)])
def test_no_group_in_two_splits_and_class_counts_within_one_image(low, high):
    for seed in range(150):
        labels, groups = _grouped_data(seed, low, high)
        shares = {"val": 0.2, "test": 0.15} if seed % 2 else {"val": 0.25}
        try:
            picked = carve(labels, shares, seed, groups=groups)
        except CarveError:
            continue  # too few groups of a class: an error, never a bad split
        g = np.asarray(groups)
        members = {s: set(g[i]) for s, i in picked.items()}
        members["train"] = set(g) - set().union(*members.values())
        names = list(members)
        for a in range(len(names)):
            for b in range(a + 1, len(names)):
                assert members[names[a]].isdisjoint(members[names[b]]), (seed, names[a], names[b])
        totals = np.bincount(labels, minlength=2)
        for split, index in picked.items():
            counts = np.bincount(labels[index], minlength=2)
            assert np.all(np.abs(counts - shares[split] * totals) <= 1.0), (seed, split, counts)
            # hence the split's melanoma share is the whole set's to within one image
            assert abs(counts[1] - len(index) * totals[1] / totals.sum()) <= 1.0


def test_the_same_seed_gives_the_same_split_and_seeds_differ():
    labels, groups = _grouped_data(3, 1, 4)
    a = carve(labels, {"val": 0.2}, 11, groups=groups)["val"]
    np.testing.assert_array_equal(a, carve(labels, {"val": 0.2}, 11, groups=groups)["val"])
    assert any(not np.array_equal(a, carve(labels, {"val": 0.2}, s, groups=groups)["val"]) for s in (12, 13, 14))


def test_ungrouped_first_carving_is_the_isic2016_rule():
    rng = np.random.default_rng(0)
    for seed in range(20):
        labels = (rng.random(int(rng.integers(20, 90))) < 0.3).astype(int).tolist()
        np.testing.assert_array_equal(carve(labels, {"val": 0.2}, seed)["val"], stratified_subset(labels, 0.2, seed))


def test_too_few_groups_of_a_class_is_one_clear_error():
    labels = [1, 1, 1] + [0] * 30
    groups = ["p1"] * 3 + [f"q{i}" for i in range(30)]  # every melanoma belongs to one patient
    with pytest.raises(CarveError, match="only 1 patient_id group.* hold a melanoma") as e:
        carve(labels, {"val": 0.2, "test": 0.2}, 0, groups=groups, group_name="patient_id")
    assert "\n" not in str(e.value)
    with pytest.raises(CarveError, match="no training split"):
        carve(labels, {"val": 0.5, "test": 0.5}, 0)


def test_patient_splits_of_synthetic_isic2020_over_many_seeds(tmp_path):
    """Through the layout: the carved ISIC 2020 splits share no patient for any seed."""
    write_synthetic("isic2020", tmp_path, n_train=150, size=24, seed=1)
    for seed in range(12):
        splits = load_splits("isic2020", tmp_path, val_seed=seed)
        patients = {name: {s.group for s in part} for name, part in splits.items()}
        assert patients["train"].isdisjoint(patients["val"] | patients["test"]) and patients["val"].isdisjoint(patients["test"])
        n = sum(map(len, splits.values()))
        mel = sum(s.label for part in splits.values() for s in part)
        for name in ("val", "test"):
            part = splits[name]
            assert abs(sum(s.label for s in part) - 0.2 * mel) <= 1 and abs(len(part) - 0.2 * n) <= 2
