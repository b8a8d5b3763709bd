"""External test sets in the results: per setting, the mean and sample standard deviation over
seeds of each trial's best-model AUC and AP on every external set (the ``ext_<name>_auc`` /
``_ap`` columns of ``trials``). Intervals come with the statistics of the per-image rows
(``predictions``, split ``ext_<name>``); this table is the plain seed summary.
"""

from __future__ import annotations

import pandas as pd

from attnmel.record import EXTERNAL_PREFIX, external_metrics, is_external_metric
from orchestrator.results.build import terminated
from orchestrator.results.paper import SETTING_KEYS

__all__ = ["external_names", "external_summary"]


def external_names(trials: pd.DataFrame) -> list[str]:
    """The external sets the trials scored, by name, sorted."""
    return sorted({c[len(EXTERNAL_PREFIX):].rsplit("_", 1)[0] for c in trials.columns if is_external_metric(c)})


def external_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, external set) with scores: ``external``, n, mean and sample std
    (ddof=1; NaN for one seed) of AUC and AP over the finished trials."""
    done, _ = terminated(trials)
    rows = []
    for name in external_names(done):
        auc, ap = external_metrics(name)
        scored = done[done[auc].notna()]
        for key, part in scored.groupby(list(SETTING_KEYS), dropna=False, sort=True):
            rows.append({**dict(zip(SETTING_KEYS, key)), "external": name, "n": len(part),
                         "auc_mean": part[auc].mean(), "auc_std": part[auc].std(ddof=1),
                         "ap_mean": part[ap].mean(), "ap_std": part[ap].std(ddof=1)})  # fmt: skip
    return pd.DataFrame(rows, columns=[*SETTING_KEYS, "external", "n", "auc_mean", "auc_std", "ap_mean", "ap_std"])
