"""Epoch sampler: shuffled passes over the training set with melanoma oversampled.

Paper (section 3.1): each pass visits every image once and every melanoma ``oversample``
times in total (×4), and an epoch is ``passes`` passes (2 for ISIC 2017, 5 for ISIC 2016).
The order of epoch e depends only on (seed, e), so a run resumed at epoch e needs no saved
RNG state and sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["EpochSampler"]



class EpochSampler:
    """Index order for each epoch: ``passes`` shuffled passes with melanoma ×``oversample``."""

    def __init__(self, labels: Sequence[int], *, oversample: int = 4, passes: int = 2, seed: int = 0):
        if oversample < 1:
            raise ValueError(f"oversample must be >= 1, got {oversample}")
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        labels_a = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels_a.size == 0:
            raise ValueError("cannot sample from an empty training set")
        self.oversample, self.passes, self.seed = int(oversample), int(passes), int(seed)
        melanoma = np.flatnonzero(labels_a == 1)
        # One pass: every index once, plus each melanoma (oversample − 1) more times.
        self._pass = np.concatenate([np.arange(labels_a.size), np.repeat(melanoma, self.oversample - 1)])
        self._n = labels_a.size

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """(len(self),) int64 indices for ``epoch``; the same (seed, epoch) gives the same order."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        return np.concatenate([rng.permutation(self._pass) for _ in range(self.passes)])

    def __len__(self) -> int:
        return self.passes * len(self._pass)

    def state_dict(self) -> dict:
        """Everything that fixes the order (there is no hidden RNG state to save)."""
        return {"seed": self.seed, "oversample": self.oversample, "passes": self.passes, "num_samples": self._n}

    def load_state_dict(self, state: dict) -> None:
        """Check a checkpoint's sampler matches this one; a mismatch would silently change the data order."""
        if state != self.state_dict():
            raise ValueError(f"sampler state {state} does not match this sampler {self.state_dict()}")
