"""Bootstrap intervals: block-vectorised metrics against one scikit-learn call per resample.

``orchestrator.results.stats`` computes a resample block's AUCs (midrank Mann–Whitney) and APs (per
group of tied scores) with array operations. This prints, for ISIC 2017's test split (600
images, 117 melanomas) and the demo's (128), the seconds of 2000 stratified resamples both
ways on the same resamples, their ratio, and the largest difference between the two sets of
values (0 up to rounding: the same numbers).

    .venv/bin/python benchmarks/bootstrap_speed.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import auc, average_precision_score, roc_curve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.results.stats import _index_blocks, _resampled  # noqa: E402


def _curve_auc(y: np.ndarray, score: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(y, score)
    return float(auc(fpr, tpr))


def per_call(metric: str, y: np.ndarray, p: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The same resamples, one scikit-learn call each, its input checks switched off (the
    previous implementation: ``roc_curve`` + ``auc`` for AUC, ``average_precision_score``)."""
    fn = _curve_auc if metric == "auc" else average_precision_score
    y_star = np.sort(y)[::-1]  # positives first, as the resample rows are
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return np.array([fn(y_star, p[idx]) for block in _index_blocks(y, n, seed) for idx in block])


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'images':>6} {'pos':>4} {'metric':>6} {'per call s':>10} {'blocks s':>9} {'ratio':>6} {'max |diff|':>10}")
    for n_images, n_pos in ((600, 117), (128, 26)):
        y = np.r_[np.ones(n_pos, int), np.zeros(n_images - n_pos, int)]
        p = np.round(1 / (1 + np.exp(-(y + rng.normal(0, 1.2, n_images)))), 3)  # 3 decimals: ties, as in real outputs
        for metric in ("auc", "ap"):
            start = time.perf_counter()
            slow = per_call(metric, y, p, 2000, seed=0)
            t_slow = time.perf_counter() - start
            start = time.perf_counter()
            fast = _resampled(metric, y, [p], 2000, seed=0)[:, 0]
            t_fast = time.perf_counter() - start
            print(f"{n_images:>6} {n_pos:>4} {metric:>6} {t_slow:>10.3f} {t_fast:>9.3f} {t_slow / t_fast:>6.0f} "
                  f"{np.abs(slow - fast).max():>10.1e}")


if __name__ == "__main__":
    main()
