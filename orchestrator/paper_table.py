"""The paper-style tables of a sweep: Tables 1–2 (test AP and AUC) and Table 3 (Jaccard of
the attention maps with the lesion masks), ours beside Yan et al.'s.

Tables 1–2: one row per model setting, test AP and AUC as mean ± std over seeds, n, and with
``--paper`` the paper's numbers beside ours. Only settings the paper reports (no ROI, or the
paper's λ1 = 0.001, λ2 = 0.01) go in the paper table; other λ settings are listed after it.
Where the trials stored per-image predictions, :func:`add_intervals` adds each setting's
bootstrap interval (see :mod:`orchestrator.stats`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from attnmel.config import LossConfig
from orchestrator.report import terminated

__all__ = [
    "MAP_ORDER",
    "PAPER_LAMBDAS",
    "PAPER_ORDER",
    "SETTING_KEYS",
    "add_intervals",
    "at_paper_lambda",
    "format_summary",
    "format_table3",
    "format_trial_intervals",
    "paper_jaccard",
    "paper_results",
    "summarize",
    "summarize_attention",
]

log = logging.getLogger(__name__)

# §2.3 of the paper: "We fix λ1 = 0.001, λ2 = 0.01", which are the loss config's defaults.
PAPER_LAMBDAS = (LossConfig().lambda1, LossConfig().lambda2)
PAPER_ORDER = (
    "VGG-16", "VGG-16-GAP", "Mel-CNN", "AttnMel-CNN",
    "AttnMel-CNN-Dermo", "AttnMel-CNN-Lesion", "AttnMel-CNN-Bkg",
)  # fmt: skip
# One model setting = everything but the seed; every per-setting table groups by these.
# `variant` rides along (paper_name determines it) so that a setting can be named by its code
# token, "attnmel+lesion".
SETTING_KEYS = ("dataset", "variant", "roi", "paper_name", "lambda1", "lambda2", "backbone", "pretrained")
MAP_ORDER = ("pool3", "pool4", "cam")  # the attention table's map names, in Table 3's order
_PAPER_MAP = {"pool3": "pool3", "pool4": "pool4", "CAM": "cam"}  # paper_jaccard.csv → ours
_TABLE3_DATASET = "isic2017"  # §3.3: Table 3 is computed on the ISIC 2017 test images


def _read_csv(name: str) -> pd.DataFrame:
    from importlib import resources

    with resources.files("orchestrator").joinpath(name).open() as handle:
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


def at_paper_lambda(roi: str, lambda1: float, lambda2: float) -> bool:
    """Whether the paper reports this setting: no ROI (effective λ = 0), or the paper's λ."""
    if roi == "none":
        return True
    return bool(np.isclose(lambda1, PAPER_LAMBDAS[0]) and np.isclose(lambda2, PAPER_LAMBDAS[1]))


def summarize(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Paper-style summary of the TERMINATED trials: one row per model setting.

    Returns ``(summary, excluded)``: ``summary`` has the group keys, ``n``, mean and sample
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


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.3f} ± {'—' if math.isnan(std) else f'{std:.3f}'}"


def _number(value: float, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def format_summary(summary: pd.DataFrame, excluded: dict[str, int], *, paper: bool = False) -> str:
    """The summary as text: one paper-style table per dataset, other λ settings after it."""
    out: list[str] = []
    if summary.empty:
        out.append("no TERMINATED trials to summarise")
    for dataset, part in summary.groupby("dataset", sort=True):
        setups = part[["backbone", "pretrained"]].drop_duplicates()
        vary_setup = len(setups) > 1
        header = f"{dataset}"
        if not vary_setup:
            backbone, pretrained = setups.iloc[0]
            header += f" — backbone {backbone}, {'ImageNet-pretrained' if pretrained else 'from scratch'}"
        for in_paper, title in ((True, header), (False, f"{dataset} — other λ settings (not in the paper)")):
            rows = part[part["in_paper"] == in_paper]
            if rows.empty:
                continue
            table = pd.DataFrame({"model": rows["paper_name"]})
            if not in_paper:
                table["λ1"] = rows["lambda1"].map(lambda v: f"{v:g}")
                table["λ2"] = rows["lambda2"].map(lambda v: f"{v:g}")
            if vary_setup:
                table["backbone"] = rows["backbone"]
                table["pretrained"] = rows["pretrained"].map(lambda v: "yes" if v else "no")
            table["test AP"] = [_mean_std(m, s) for m, s in zip(rows["test_ap_mean"], rows["test_ap_std"])]
            if paper and in_paper:
                table["paper AP"] = rows["paper_ap"].map(_number)
                table["Δ AP"] = rows["ap_diff"].map(lambda v: _number(v, signed=True))
            table["test AUC"] = [_mean_std(m, s) for m, s in zip(rows["test_auc_mean"], rows["test_auc_std"])]
            if paper and in_paper:
                table["paper AUC"] = rows["paper_auc"].map(_number)
                table["Δ AUC"] = rows["auc_diff"].map(lambda v: _number(v, signed=True))
            table["n"] = rows["n"].astype(int)
            out += [title, table.to_string(index=False), ""]
    if not summary.empty:
        out.append("mean ± sample std over seeds of the test metrics at each trial's best validation epoch")
        if paper:
            out.append("paper: Yan et al., IPMI 2019, Tables 1–2; Δ = ours − paper")
    if excluded:
        counts = ", ".join(f"{status} {count}" for status, count in sorted(excluded.items()))
        out.append(f"excluded {sum(excluded.values())} trial(s) that did not finish: {counts}")
    return "\n".join(out).rstrip() + "\n"
