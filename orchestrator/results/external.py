"""External test sets in the results: per setting and external set, the mean and sample
standard deviation over seeds of each trial's best-model AUC and AP (the ``ext_<name>_auc`` /
``_ap`` columns of ``trials``) and, from the per-image rows (``predictions``, split
``ext_<name>``), the same interval as the in-distribution test set's: the expected
single-model metric over seeds and the external set's images
(:func:`orchestrator.results.comparisons.setting_intervals`).
"""

from __future__ import annotations

import pandas as pd

from attnmel.record import EXTERNAL_PREFIX, external_metrics, external_split, is_external_metric
from orchestrator.results.build import terminated
from orchestrator.results.paper import SETTING_KEYS
from orchestrator.results.orh import DEFAULT_COVARIANCE
from orchestrator.results.stats import DEFAULT_RESAMPLES

__all__ = ["EXTERNAL_COLUMNS", "external_names", "external_summary"]

_INTERVALS = ["auc_low", "auc_high", "ap_low", "ap_high", "ci_trials", "ci_method"]
EXTERNAL_COLUMNS = [*SETTING_KEYS, "external", "n", "auc_mean", "auc_std", "ap_mean", "ap_std", *_INTERVALS]


def external_names(trials: pd.DataFrame) -> list[str]:
    """The external sets the trials scored, by name, sorted."""
    return sorted({c[len(EXTERNAL_PREFIX):].rsplit("_", 1)[0] for c in trials.columns if is_external_metric(c)})


def external_summary(
    trials: pd.DataFrame, predictions: pd.DataFrame | None = None, *, n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0, level: float = 0.95, covariance: str = DEFAULT_COVARIANCE,
) -> pd.DataFrame:
    """One row per (setting, external set) with scores: ``external``, n, mean and sample std
    (ddof=1; NaN for one seed) of AUC and AP over the finished trials; with ``predictions``,
    each setting's interval of the expected single-model AUC and AP on that set (``auc_low``,
    ``auc_high``, ``ap_low``, ``ap_high``; ``ci_trials`` the trials it used, ``ci_method``),
    NaN where the trials stored no per-image rows for it. Raises ``ValueError`` (one line)
    when a set's predictions cannot give an interval (e.g. one class only)."""
    from orchestrator.results.comparisons import setting_intervals

    done, _ = terminated(trials)
    rows = []
    for name in external_names(done):
        auc, ap = external_metrics(name)
        scored = done[done[auc].notna()]
        for key, part in scored.groupby(list(SETTING_KEYS), dropna=False, sort=True):
            rows.append({**dict(zip(SETTING_KEYS, key)), "external": name, "n": len(part),
                         "auc_mean": part[auc].mean(), "auc_std": part[auc].std(ddof=1),
                         "ap_mean": part[ap].mean(), "ap_std": part[ap].std(ddof=1)})  # fmt: skip
    summary = pd.DataFrame(rows, columns=EXTERNAL_COLUMNS[: -len(_INTERVALS)])
    found = [pd.DataFrame(columns=[*SETTING_KEYS, "external", *_INTERVALS])]
    for name in summary["external"].unique() if predictions is not None and not predictions.empty else ():
        split = external_split(name)
        if not (predictions["split"] == split).any():
            continue
        try:
            per_setting, _ = setting_intervals(trials, predictions, split=split, n_resamples=n_resamples, seed=seed,
                                               level=level, per_trial=False, covariance=covariance)
        except ValueError as error:
            raise ValueError(f"external set {name}: {error}") from None
        found.append(per_setting.rename(columns={"n_trials": "ci_trials", "method": "ci_method"})
                     .assign(external=name)[[*SETTING_KEYS, "external", *_INTERVALS]])  # fmt: skip
    # a left merge: NaN intervals where a set's trials stored no rows (pandas pairs missing keys alike)
    intervals = pd.concat(found, ignore_index=True) if len(found) > 1 else found[0]
    return summary.merge(intervals, on=[*SETTING_KEYS, "external"], how="left")[EXTERNAL_COLUMNS]
