"""The paper-style tables of a sweep: Tables 1–2 (test AP and AUC) and Table 3 (Jaccard of
the attention maps with the lesion masks), ours beside Yan et al.'s.

Tables 1–2: one row per model setting, test AP and AUC as mean ± std over seeds, n, and with
``--paper`` the paper's numbers beside ours. Only settings the paper reports (no ROI, or the
paper's λ1 = 0.001, λ2 = 0.01) go in the paper table; other λ settings are listed after it.
Where the trials stored per-image predictions, :func:`add_intervals` adds each setting's
interval over seeds and test images (see :mod:`orchestrator.results.stats`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from attnmel.config import LossConfig
from attnmel.model_names import paper_order
from attnmel.record import MAP_NAMES
from orchestrator.results.build import terminated
from orchestrator.results.tables import OPERATING_COLUMNS

__all__ = [
    "PAPER_LAMBDAS",
    "PAPER_ORDER",
    "SETTING_KEYS",
    "TABLE3_DATASET",
    "add_intervals",
    "at_paper_lambda",
    "inside",
    "is_paper_lambda",
    "paper_jaccard",
    "paper_results",
    "same_lambdas",
    "summarize",
    "setting_key",
    "summarize_attention",
    "summarize_operating_points",
]

log = logging.getLogger(__name__)

# §2.3 of the paper: "We fix λ1 = 0.001, λ2 = 0.01", which are the loss config's defaults.
PAPER_LAMBDAS = (LossConfig().lambda1, LossConfig().lambda2)
PAPER_ORDER = paper_order()  # Table 2's networks by paper name, in its order
# One model setting = everything but the seed; every per-setting table groups by these.
# `variant` rides along (paper_name determines it) so that a setting can be named by its code
# token, "attnmel+lesion".
SETTING_KEYS = ("dataset", "variant", "roi", "paper_name", "lambda1", "lambda2", "backbone", "pretrained")
_PAPER_MAP = {"pool3": "pool3", "pool4": "pool4", "CAM": "cam"}  # paper_jaccard.csv → ours
TABLE3_DATASET = "isic2017"  # §3.3: Table 3 is computed on the ISIC 2017 test images


def _read_csv(name: str) -> pd.DataFrame:
    from importlib import resources

    with resources.files("orchestrator.results").joinpath(name).open() as handle:
        return pd.read_csv(handle)


def paper_results() -> pd.DataFrame:
    """The paper's Tables 1 and 2 (the project's copy of ``paper_results.csv``)."""
    return _read_csv("paper_results.csv")


def paper_jaccard() -> pd.DataFrame:
    """The paper's Table 3 (``paper_jaccard.csv``): columns model, map (our names: pool3, pool4,
    cam), jaccard."""
    table = _read_csv("paper_jaccard.csv")
    unknown = sorted(set(table["map"]) - set(_PAPER_MAP))
    if unknown:  # the packaged file is ours; a new map name there must be mapped here
        raise ValueError(f"paper_jaccard.csv: unknown map name(s) {', '.join(unknown)}")
    return table.assign(map=table["map"].map(_PAPER_MAP))


_LAMBDA_RTOL = 1e-6  # λ pairs this close (relatively; 0 only equals 0) are the same setting


def same_lambdas(lambdas: tuple[float, float], other: tuple[float, float]) -> bool:
    """Whether two (λ1, λ2) pairs are the same setting's: the one λ comparison of the results."""
    pairs = zip(lambdas, other, strict=True)
    return all(math.isclose(float(a), float(b), rel_tol=_LAMBDA_RTOL, abs_tol=0.0) for a, b in pairs)


def is_paper_lambda(lambda1: float, lambda2: float) -> bool:
    """Whether (λ1, λ2) is the paper's pair (§2.3), whatever the ROI."""
    return same_lambdas((lambda1, lambda2), PAPER_LAMBDAS)


def at_paper_lambda(roi: str, lambda1: float, lambda2: float) -> bool:
    """Whether the paper reports this setting: no ROI (effective λ = 0), or the paper's λ."""
    return roi == "none" or is_paper_lambda(lambda1, lambda2)


def summarize(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Paper-style summary of the TERMINATED trials: one row per model setting.

    Returns ``(summary, excluded)``: ``summary`` has the ``SETTING_KEYS``, ``n``, mean and sample
    standard deviation (ddof=1; NaN when n = 1) of test AP/AUC over seeds, mean validation
    AUC, ``in_paper`` (the setting is one the paper reports: λ = paper's λ or no ROI), and
    the paper's AP/AUC with our mean minus theirs; ``excluded`` counts the other trials by status.
    """
    done, excluded = terminated(trials)
    columns = [*SETTING_KEYS, "n", "seeds", "test_ap_mean", "test_ap_std", "test_auc_mean", "test_auc_std",
               "val_auc_mean", "in_paper", "paper_ap", "paper_auc", "ap_diff", "auc_diff"]  # fmt: skip
    if done.empty:
        return pd.DataFrame(columns=columns), excluded
    grouped = done.groupby(list(SETTING_KEYS), dropna=False, sort=False)
    summary = grouped.agg(
        n=("trial_id", "size"),
        seeds=("seed", "nunique"),
        test_ap_mean=("test_ap", "mean"),
        test_ap_std=("test_ap", lambda v: v.std(ddof=1)),
        test_auc_mean=("test_auc", "mean"),
        test_auc_std=("test_auc", lambda v: v.std(ddof=1)),
        val_auc_mean=("val_auc", "mean"),
    ).reset_index()
    for row in summary.itertuples():
        if row.seeds < row.n:
            log.warning(
                "%s %s (λ1=%g, λ2=%g): %d trials share %d seeds, so the sweep varies another key "
                "and the mean mixes settings", row.dataset, row.paper_name, row.lambda1, row.lambda2, row.n, row.seeds,
            )  # fmt: skip
    summary["in_paper"] = [
        at_paper_lambda(r.roi, r.lambda1, r.lambda2) for r in summary.itertuples()
    ]
    paper = paper_results().rename(columns={"model": "paper_name", "ap": "paper_ap", "auc": "paper_auc"})
    paper = paper[paper["paper_name"].isin(PAPER_ORDER)][["dataset", "paper_name", "paper_ap", "paper_auc"]]
    summary = summary.merge(paper, on=["dataset", "paper_name"], how="left")
    # The paper's numbers sit only beside the settings it reports.
    summary.loc[~summary["in_paper"], ["paper_ap", "paper_auc"]] = np.nan
    summary["ap_diff"] = summary["test_ap_mean"] - summary["paper_ap"]
    summary["auc_diff"] = summary["test_auc_mean"] - summary["paper_auc"]
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    summary["_rank"] = summary["paper_name"].map(lambda name: rank.get(name, len(rank)))
    summary = summary.sort_values(
        ["dataset", "in_paper", "_rank", "paper_name", "lambda1", "lambda2", "backbone", "pretrained"],
        ascending=[True, False, True, True, True, True, True, True], kind="stable",
    )  # fmt: skip
    return summary.drop(columns="_rank").reset_index(drop=True)[columns], excluded


def setting_key(row: dict) -> tuple:
    """A setting's ``SETTING_KEYS`` values as a hashable key (missing values as None)."""
    return tuple(None if pd.isna(row[k]) else row[k] for k in SETTING_KEYS)


def inside(value: float, low: float, high: float) -> bool | None:
    if any(v is None or pd.isna(v) for v in (value, low, high)):
        return None
    return bool(low <= value <= high)


# comparisons.setting_intervals' per-setting columns → the summary's
_CI_COLUMNS = {
    "n_trials": "ci_trials", "auc": "auc_est", "auc_low": "auc_low", "auc_high": "auc_high", "ap": "ap_est",
    "ap_low": "ap_low", "ap_high": "ap_high", "covers": "ci_covers", "method": "ci_method",
    "ensemble_auc": "ensemble_auc", "ensemble_auc_low": "ensemble_auc_low", "ensemble_auc_high": "ensemble_auc_high",
    "ensemble_ap": "ensemble_ap", "ensemble_ap_low": "ensemble_ap_low", "ensemble_ap_high": "ensemble_ap_high",
    "ensemble_method": "ensemble_method",
}  # fmt: skip
_TEXT_COLUMNS = ("ci_covers", "ci_method", "ensemble_method")


def add_intervals(summary: pd.DataFrame, per_setting: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with each setting's interval (``comparisons.setting_intervals``' ``per_setting``
    frame) beside it.

    Adds ``ci_trials`` (trials behind the interval), ``auc_est``/``ap_est`` (the mean over seeds
    on the images every trial scored), ``auc_low``/``auc_high``/``ap_low``/``ap_high``,
    ``ci_covers``, ``ci_method``, the ``ensemble_*`` columns where ``per_setting`` has them, and
    ``paper_auc_in_ci``/``paper_ap_in_ci`` (True/False; None without an interval or a paper
    number). Settings without predictions get NaN.
    """
    by_key = {setting_key(row): row for row in per_setting.to_dict("records")}
    found = [by_key.get(setting_key(row), {}) for row in summary.to_dict("records")]
    out = summary.copy()
    for source, column in _CI_COLUMNS.items():
        if source not in per_setting.columns:
            continue
        out[column] = pd.Series([row.get(source, np.nan) for row in found], index=out.index, dtype=object)
        if column not in _TEXT_COLUMNS:
            out[column] = out[column].astype(float)
    for metric in ("auc", "ap"):
        out[f"paper_{metric}_in_ci"] = [
            inside(p, lo, hi) for p, lo, hi in zip(out[f"paper_{metric}"], out[f"{metric}_low"], out[f"{metric}_high"])
        ]
    return out


def summarize_operating_points(trials: pd.DataFrame) -> pd.DataFrame:
    """Per model setting of the TERMINATED trials: ``n`` (trials with the columns) and the mean
    and sample std over seeds (``<column>_mean``, ``<column>_std``) of each of the trials
    table's ``OPERATING_COLUMNS``; sorted like :func:`summarize`."""
    done, _ = terminated(trials)
    columns = [*SETTING_KEYS, "n", *(f"{c}_{s}" for c in OPERATING_COLUMNS for s in ("mean", "std"))]
    done = done[done[OPERATING_COLUMNS[0]].notna()] if OPERATING_COLUMNS[0] in done else done.iloc[0:0]
    if done.empty:
        return pd.DataFrame(columns=columns)
    grouped = done.groupby(list(SETTING_KEYS), dropna=False, sort=False)
    table = grouped.agg(n=("trial_id", "size"), **{f"{c}_mean": (c, "mean") for c in OPERATING_COLUMNS},
                        **{f"{c}_std": (c, lambda v: v.std(ddof=1)) for c in OPERATING_COLUMNS}).reset_index()  # fmt: skip
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    table["_rank"] = table["paper_name"].map(lambda name: rank.get(name, len(rank)))
    table = table.sort_values(["dataset", "_rank", "paper_name", "lambda1", "lambda2", "backbone", "pretrained"],
                              kind="stable")  # fmt: skip
    return table.reset_index(drop=True)[columns]


# --------------------------------------------------------------------------- Table 3


def summarize_attention(trials: pd.DataFrame, attention: pd.DataFrame) -> pd.DataFrame:
    """Table 3 from the ``attention`` table: one row per model setting, map and mask split.

    Over the setting's TERMINATED trials: ``n`` (trials), ``images_min``/``images_max``
    (masked images per trial), ``jaccard_mean`` and ``jaccard_std`` (mean and sample std over
    seeds of each trial's mean per-image Jaccard), ``in_paper`` and the paper's value with
    our mean minus it (``paper_jaccard``, ``jaccard_diff``; only for ISIC 2017 at the paper's λ).
    """
    columns = [*SETTING_KEYS, "map", "split", "n", "images_min", "images_max", "jaccard_mean", "jaccard_std",
               "in_paper", "paper_jaccard", "jaccard_diff"]  # fmt: skip
    done, _ = terminated(trials)
    if done.empty or attention.empty:
        return pd.DataFrame(columns=columns)
    rows = attention.merge(done[["sweep", "trial_id", *SETTING_KEYS]], on=["sweep", "trial_id"], how="inner")
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby([*SETTING_KEYS, "map", "split"], dropna=False, sort=False)
    table = grouped.agg(
        n=("trial_id", "size"),
        images_min=("n_images", "min"),
        images_max=("n_images", "max"),
        jaccard_mean=("jaccard_mean", "mean"),
        jaccard_std=("jaccard_mean", lambda v: v.std(ddof=1)),
    ).reset_index()
    table["in_paper"] = [at_paper_lambda(r.roi, r.lambda1, r.lambda2) for r in table.itertuples()]
    paper = paper_jaccard().rename(columns={"model": "paper_name", "jaccard": "paper_jaccard"})
    table = table.merge(paper, on=["paper_name", "map"], how="left")
    table.loc[~table["in_paper"] | (table["dataset"] != TABLE3_DATASET), "paper_jaccard"] = np.nan
    table["jaccard_diff"] = table["jaccard_mean"] - table["paper_jaccard"]
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    maps = {name: i for i, name in enumerate(MAP_NAMES)}
    table["_rank"] = table["paper_name"].map(lambda name: rank.get(name, len(rank)))
    table["_map"] = table["map"].map(lambda name: maps.get(name, len(maps)))
    table = table.sort_values(
        ["dataset", "in_paper", "_rank", "paper_name", "lambda1", "lambda2", "backbone", "pretrained", "_map",
         "map", "split"],
        ascending=[True, False, *[True] * 9], kind="stable",
    )  # fmt: skip
    return table.reset_index(drop=True)[columns]


