"""EpochSampler: oversampling counts per pass, determinism in (seed, epoch), shuffling."""

from __future__ import annotations

import numpy as np
import pytest

from attnmel.data.sampler import EpochSampler

LABELS = [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]  # 3 melanoma, 9 other


@pytest.mark.parametrize("oversample,passes", [(4, 2), (1, 1), (3, 5)])
def test_every_pass_visits_each_image_once_and_each_melanoma_oversample_times(oversample, passes):
    sampler = EpochSampler(LABELS, oversample=oversample, passes=passes, seed=0)
    order = sampler.epoch_indices(0)
    per_pass = len(LABELS) + (oversample - 1) * sum(LABELS)
    assert len(order) == len(sampler) == passes * per_pass
    for p in range(passes):
        counts = np.bincount(order[p * per_pass : (p + 1) * per_pass], minlength=len(LABELS))
        expected = [oversample if y else 1 for y in LABELS]
        np.testing.assert_array_equal(counts, expected)


def test_order_depends_only_on_seed_and_epoch():
    a = EpochSampler(LABELS, seed=7)
    b = EpochSampler(LABELS, seed=7)
    np.testing.assert_array_equal(a.epoch_indices(3), b.epoch_indices(3))  # a resumed run sees the same order
    assert not np.array_equal(a.epoch_indices(3), a.epoch_indices(4))
    assert not np.array_equal(a.epoch_indices(3), EpochSampler(LABELS, seed=8).epoch_indices(3))


def test_passes_are_shuffled_independently():
    sampler = EpochSampler(list(range(2)) * 20, oversample=2, passes=2, seed=0)
    order = sampler.epoch_indices(0)
    half = len(order) // 2
    assert not np.array_equal(order[:half], order[half:])
    assert not np.array_equal(np.sort(order[:half]), order[:half])  # not left in index order


def test_state_dict_round_trip_and_bad_arguments():
    sampler = EpochSampler(LABELS, oversample=4, passes=2, seed=3)
    sampler.load_state_dict(sampler.state_dict())
    with pytest.raises(ValueError):
        sampler.load_state_dict({**sampler.state_dict(), "seed": 4})
    for kw in ({"oversample": 0}, {"passes": 0}):
        with pytest.raises(ValueError):
            EpochSampler(LABELS, **kw)
    with pytest.raises(ValueError):
        EpochSampler([])
