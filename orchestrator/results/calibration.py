"""Reliability curves per trial and setting, from the ``predictions`` table: what
``attnmel plot calibration`` draws (the trials table's Brier and ECE columns summarise them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from attnmel.metrics import CALIBRATION_BINS, bin_index, brier_score, expected_calibration_error, reliability_curve
from orchestrator.results.comparisons import setting_labels
from orchestrator.results.paper import SETTING_KEYS
from orchestrator.results.build import terminated

__all__ = ["CURVE_COLUMNS", "reliability_curves"]

CURVE_COLUMNS = [*SETTING_KEYS, "setting", "split", "sweep", "trial_id", "seed", "bins", "bin", "observed",
                 "predicted", "count", "brier", "ece"]  # fmt: skip


def reliability_curves(
    trials: pd.DataFrame, predictions: pd.DataFrame, *, split: str = "test", bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """One row per finished trial and non-empty bin of ``bins`` equal-width probability bins:
    the share of melanomas (``observed``), the mean probability (``predicted``), the images in
    the bin (``count``), with the trial's Brier score and ECE, its setting's label and ``bins``;
    ``bin`` is the bin's index among the ``bins``.
    Trials whose ``split`` predictions lack a class are left out."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    done, _ = terminated(trials)
    preds = predictions[predictions["split"] == split]
    if done.empty or preds.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    # the image rows' own columns only: `dataset` is the trial's too (the setting key wins)
    keyed = done.merge(preds[["sweep", "trial_id", "label", "prob"]], on=["sweep", "trial_id"], how="inner")
    settings = keyed[list(SETTING_KEYS)].drop_duplicates().to_dict("records")
    labels = dict(zip(map(lambda k: tuple(k.values()), settings), setting_labels(settings)))
    rows = []
    for (sweep, trial_id), part in keyed.groupby(["sweep", "trial_id"], sort=True):
        y, p = part["label"].to_numpy(), part["prob"].to_numpy(dtype=float)
        if y.min() == y.max():
            continue
        keys = {k: part[k].iloc[0] for k in SETTING_KEYS}
        observed, predicted, count = reliability_curve(y, p, bins)
        extra = {"brier": brier_score(y, p), "ece": expected_calibration_error(y, p, bins)}
        occupied = np.flatnonzero(np.bincount(bin_index(p, bins), minlength=bins))
        for b, o, q, c in zip(occupied, observed, predicted, count):
            rows.append({**keys, "setting": labels[tuple(keys.values())], "split": split, "sweep": sweep,
                         "trial_id": trial_id, "seed": part["seed"].iloc[0], "bins": bins, "bin": int(b), "observed": o,
                         "predicted": q, "count": int(c), **extra})  # fmt: skip
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)
