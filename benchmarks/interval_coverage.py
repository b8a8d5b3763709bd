"""Coverage of a setting's 95 % interval in a simulation with known truth.

Seeds × images from a model whose expected single-model AUC is known (the model of
``tests/orchestrator/results/test_stats.py``): image i has a difficulty u_i shared by every
trained model (the same test images), trial k adds its own noise and a seed effect
d_k ~ N(δ, τ²) on the melanomas' scores; trial k's population AUC is Φ(d_k), the expected
single-model AUC Φ(δ/√(1 + τ²)) ≈ 0.69 at δ = 0.5, τ = 0.17 (seed-to-seed SD ≈ 0.06 AUC), 19.5 %
melanomas as in ISIC 2017. For 128 and 600 test images × 3, 5 and 10 seeds it prints how often
each interval covers the truth and its median width:

- ensemble (the old ``report show`` interval): stratified bootstrap of the AUC of the
  seed-averaged probability, percentile;
- two-level bootstrap: seeds resampled, then images (stratified); statistic = mean of the drawn
  seeds' AUCs on the drawn images, percentile;
- seeds + images (``stats.setting_interval``, what ``report show`` prints now).

    .venv/bin/python benchmarks/interval_coverage.py [--replicates 200] [--resamples 500]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.results.stats import bootstrap_ci, resampled_metric, setting_interval  # noqa: E402

TAU, SIGMA_U2, SIGMA_E2, DELTA = 0.17, 0.3, 0.2, 0.5


def draw(rng: np.random.Generator, seeds: int, images: int) -> tuple[np.ndarray, np.ndarray]:
    m = round(0.195 * images)
    y = np.r_[np.ones(m, int), np.zeros(images - m, int)]
    u = rng.normal(0, math.sqrt(SIGMA_U2), images)
    d = rng.normal(DELTA, TAU, seeds)
    return y, u + rng.normal(0, math.sqrt(SIGMA_E2), (seeds, images)) + d[:, None] * y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=500)
    args = parser.parse_args()
    truth = NormalDist().cdf(DELTA / math.sqrt(1 + TAU**2))
    print(f"expected single-model AUC {truth:.3f}; {args.replicates} replicates, {args.resamples} resamples; "
          "coverage of the nominal 95 % interval (median width)")  # fmt: skip
    print(f"{'images':>6} {'seeds':>5} {'ensemble':>16} {'two-level boot':>16} {'seeds + images':>16}")
    rng = np.random.default_rng(0)
    for images in (128, 600):
        for seeds in (3, 5, 10):
            hits, widths = np.zeros(3), [[], [], []]
            for r in range(args.replicates):
                y, probs = draw(rng, seeds, images)
                old = bootstrap_ci(y, probs.mean(axis=0), "auc", n_resamples=args.resamples, seed=r)
                values = resampled_metric("auc", y, probs, args.resamples, seed=r)  # (B, seeds), images shared
                drawn = np.random.default_rng(10_000 + r).integers(0, seeds, (args.resamples, seeds))
                two = np.quantile(np.take_along_axis(values, drawn, axis=1).mean(axis=1), [0.025, 0.975])
                new = setting_interval(y, probs, "auc", n_resamples=args.resamples, seed=r)
                for k, (low, high) in enumerate(((old.low, old.high), tuple(two), (new.low, new.high))):
                    hits[k] += low <= truth <= high
                    widths[k].append(high - low)
            cells = [f"{h / args.replicates:.1%} ({np.median(w):.3f})" for h, w in zip(hits, widths)]
            print(f"{images:>6} {seeds:>5} " + " ".join(f"{c:>16}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
