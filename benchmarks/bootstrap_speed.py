"""Bootstrap speed: count-based block resampling against one scikit-learn call per resample, and
the λ sweep's intervals end to end.

(1) For ISIC 2017's test split (600 images, 117 melanomas) and the demo's (128): seconds of 2000
stratified resamples of one model's AUC and AP, scored by ``orchestrator.results.stats.
resampled_metric`` (a resample is a row of per-image counts; no resample is sorted) and by one
scikit-learn call per materialised resample, their ratio and the largest difference (0 up to
rounding). (2) The λ sensitivity sweep's intervals: 51 settings × 3 seeds on 600 images, AUC and
AP, each ``setting_interval`` with 2000 resamples, as ``report show`` computes them. Public
functions only.

    .venv/bin/python benchmarks/bootstrap_speed.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.results.stats import resampled_metric, setting_interval, stratified_counts  # noqa: E402

RESAMPLES = 2000


def per_call(metric: str, y: np.ndarray, p: np.ndarray, seed: int) -> np.ndarray:
    """The same resamples, materialised, one scikit-learn call each (input checks off)."""
    fn = roc_auc_score if metric == "auc" else average_precision_score
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return np.array([fn(np.repeat(y, row), np.repeat(p, row))
                         for counts in stratified_counts(y, RESAMPLES, seed) for row in counts])  # fmt: skip


def _model(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    return np.round(1 / (1 + np.exp(-(y + rng.normal(0, 1.2, y.size)))), 3)  # 3 decimals: ties, as in real outputs


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"(1) {RESAMPLES} stratified resamples of one model")
    print(f"{'images':>6} {'pos':>4} {'metric':>6} {'per call s':>10} {'blocks s':>9} {'ratio':>6} {'max |diff|':>10}")
    for n_images, n_pos in ((600, 117), (128, 26)):
        y = np.r_[np.ones(n_pos, int), np.zeros(n_images - n_pos, int)]
        p = _model(rng, y)
        for metric in ("auc", "ap"):
            start = time.perf_counter()
            slow = per_call(metric, y, p, seed=0)
            t_slow = time.perf_counter() - start
            start = time.perf_counter()
            fast = resampled_metric(metric, y, p[None], RESAMPLES, seed=0)[:, 0]
            t_fast = time.perf_counter() - start
            print(f"{n_images:>6} {n_pos:>4} {metric:>6} {t_slow:>10.3f} {t_fast:>9.3f} {t_slow / t_fast:>6.0f} "
                  f"{np.abs(slow - fast).max():>10.1e}")
    settings, seeds = 51, 3  # experiments/lambda_sensitivity.yaml: 2 ROIs × 5 × 5 λ + AttnMel-CNN
    y = np.r_[np.ones(117, int), np.zeros(483, int)]
    probs = [np.stack([_model(rng, y) for _ in range(seeds)]) for _ in range(settings)]
    start = time.perf_counter()
    for matrix in probs:
        for metric in ("auc", "ap"):
            setting_interval(y, matrix, metric, n_resamples=RESAMPLES)
    wall = time.perf_counter() - start
    print(f"(2) λ sweep: {settings} settings × {seeds} seeds × 600 images, AUC and AP, {RESAMPLES} resamples each: "
          f"{wall:.1f} s ({wall / settings:.2f} s per setting)")


if __name__ == "__main__":
    main()
