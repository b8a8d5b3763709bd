"""The paper-style tables of a sweep: Tables 1–2 (test AP and AUC) and Table 3 (Jaccard of
the attention maps with the lesion masks), ours beside Yan et al.'s.

Tables 1–2: one row per model setting, test AP and AUC as mean ± std over seeds, n, and with
``--paper`` the paper's numbers beside ours. Only settings the paper reports (no ROI, or the
paper's λ1 = 0.001, λ2 = 0.01) go in the paper table; other λ settings are listed after it.
Where the trials stored per-image predictions, :func:`add_intervals` adds each setting's
bootstrap interval (see :mod:`orchestrator.results.stats`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from attnmel.config import LossConfig
from orchestrator.results.build import terminated

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


def at_paper_lambda(roi: str, lambda1: float, lambda2: float) -> bool:
    """Whether the paper reports this setting: no ROI (effective λ = 0), or the paper's λ."""
    if roi == "none":
        return True
    return bool(np.isclose(lambda1, PAPER_LAMBDAS[0]) and np.isclose(lambda2, PAPER_LAMBDAS[1]))


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


def _setting_key(row: dict) -> tuple:
    """A setting's ``SETTING_KEYS`` values as a hashable key (missing values as None)."""
    return tuple(None if pd.isna(row[k]) else row[k] for k in SETTING_KEYS)


def _inside(value: float, low: float, high: float) -> bool | None:
    if any(v is None or pd.isna(v) for v in (value, low, high)):
        return None
    return bool(low <= value <= high)


# variant_intervals' per-setting columns → the summary's
_CI_COLUMNS = {
    "n_trials": "ci_trials", "auc_mean_prob": "auc_est", "auc_low": "auc_low", "auc_high": "auc_high",
    "ap_mean_prob": "ap_est", "ap_low": "ap_low", "ap_high": "ap_high", "method": "ci_method",
}  # fmt: skip


def add_intervals(summary: pd.DataFrame, per_setting: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with each setting's bootstrap interval (``comparisons.variant_intervals``'
    ``per_setting`` frame) beside it.

    Adds ``ci_trials`` (trials behind the interval), ``auc_est``/``ap_est`` (the metric of
    the seed-averaged probability), ``auc_low``/``auc_high``/``ap_low``/``ap_high``,
    ``ci_method`` and ``paper_auc_in_ci``/``paper_ap_in_ci`` (True/False; None without an
    interval or a paper number). Settings without predictions get NaN.
    """
    by_key = {_setting_key(row): row for row in per_setting.to_dict("records")}
    found = [by_key.get(_setting_key(row), {}) for row in summary.to_dict("records")]
    out = summary.copy()
    for source, column in _CI_COLUMNS.items():
        out[column] = pd.Series([row.get(source, np.nan) for row in found], index=out.index, dtype=object)
    for column in _CI_COLUMNS.values():
        if column != "ci_method":
            out[column] = out[column].astype(float)
    for metric in ("auc", "ap"):
        out[f"paper_{metric}_in_ci"] = [
            _inside(p, lo, hi) for p, lo, hi in zip(out[f"paper_{metric}"], out[f"{metric}_low"], out[f"{metric}_high"])
        ]
    return out


def _mean_std(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {'—' if math.isnan(std) else f'{std:.{digits}f}'}"


def _number(value: float, signed: bool = False, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _with_ci(estimate: float, low: float, high: float) -> str:
    return "—" if math.isnan(estimate) else f"{estimate:.3f} [{low:.3f}, {high:.3f}]"


def _yes_no(value: bool | None) -> str:
    return "—" if value is None or pd.isna(value) else ("yes" if value else "no")


def _setting_text(row: dict, setup: bool = False) -> str:
    """A setting as people write it: paper name, plus λ where it is regularised (and with
    ``setup`` the backbone and weights)."""
    text = f"{row['dataset']} {row['paper_name']}"
    if row["roi"] != "none":
        text += f" (λ1={row['lambda1']:g}, λ2={row['lambda2']:g})"
    if setup:
        text += f" [{row['backbone']}, {'pretrained' if row['pretrained'] else 'scratch'}]"
    return text


def _lambda_text(row: dict) -> str:
    """λ1, λ2 of a regularised setting; a dash without ROI (its effective λ is 0)."""
    return f"{row['lambda1']:g}, {row['lambda2']:g}" if row["roi"] != "none" else "—"


def _setup_header(dataset: str, part: pd.DataFrame) -> tuple[str, bool]:
    """Title of a dataset's table and whether its rows differ in backbone or weights."""
    setups = part[["backbone", "pretrained"]].drop_duplicates()
    if len(setups) > 1:
        return dataset, True
    backbone, pretrained = setups.iloc[0]
    return f"{dataset} — backbone {backbone}, {'ImageNet-pretrained' if pretrained else 'from scratch'}", False


def _setup_columns(table: pd.DataFrame, rows: pd.DataFrame) -> None:
    table["backbone"] = rows["backbone"].to_numpy()
    table["pretrained"] = rows["pretrained"].map(lambda v: "yes" if v else "no").to_numpy()


def format_summary(summary: pd.DataFrame, excluded: dict[str, int], *, paper: bool = False) -> str:
    """The summary as text: one paper-style table per dataset, other λ settings after it.

    A summary that went through :func:`add_intervals` also shows each setting's seed-averaged
    test AP and AUC with their 95 % intervals and, with ``paper``, whether the paper's number
    lies inside them.
    """
    intervals = "auc_low" in summary.columns
    out: list[str] = []
    if summary.empty:
        out.append("no TERMINATED trials to summarise")
    for dataset, part in summary.groupby("dataset", sort=True):
        header, vary_setup = _setup_header(dataset, part)
        for in_paper, title in ((True, header), (False, f"{dataset} — other λ settings (not in the paper)")):
            rows = part[part["in_paper"] == in_paper]
            if rows.empty:
                continue
            table = pd.DataFrame({"model": rows["paper_name"]})
            if not in_paper:
                table["λ1"] = rows["lambda1"].map(lambda v: f"{v:g}")
                table["λ2"] = rows["lambda2"].map(lambda v: f"{v:g}")
            if vary_setup:
                _setup_columns(table, rows)
            for metric, label in (("ap", "AP"), ("auc", "AUC")):
                table[f"test {label}"] = [_mean_std(m, s) for m, s in
                                          zip(rows[f"test_{metric}_mean"], rows[f"test_{metric}_std"])]  # fmt: skip
                if intervals:
                    table[f"seed-avg {label} [95% CI]"] = [
                        _with_ci(*v) for v in zip(rows[f"{metric}_est"], rows[f"{metric}_low"], rows[f"{metric}_high"])
                    ]
                if paper and in_paper:
                    table[f"paper {label}"] = rows[f"paper_{metric}"].map(_number)
                    table[f"Δ {label}"] = rows[f"{metric}_diff"].map(lambda v: _number(v, signed=True))
                    if intervals:
                        table[f"paper {label} in CI"] = rows[f"paper_{metric}_in_ci"].map(_yes_no)
            table["n"] = rows["n"].astype(int)
            out += [title, table.to_string(index=False), ""]
    if not summary.empty:
        out.append("test AP/AUC: mean ± sample std over seeds of the test metrics at each trial's best "
                   "validation epoch")
        if intervals:
            out += _interval_notes(summary, paper)
        if paper:
            out.append("paper: Yan et al., IPMI 2019, Tables 1–2; Δ = ours (mean over seeds) − paper")
    if excluded:
        counts = ", ".join(f"{status} {count}" for status, count in sorted(excluded.items()))
        out.append(f"excluded {sum(excluded.values())} trial(s) that did not finish: {counts}")
    return "\n".join(out).rstrip() + "\n"


def _interval_notes(summary: pd.DataFrame, paper: bool) -> list[str]:
    out = []
    methods = [m for m in dict.fromkeys(summary["ci_method"]) if isinstance(m, str)]
    if methods:
        out.append("seed-avg [95% CI]: the metric of the mean melanoma probability per test image over a "
                   "setting's seeds (a seed ensemble, so often above the mean over seeds)")  # fmt: skip
        out += [f"CI: {method}, over test images" for method in methods]
        if paper:
            out.append("paper in CI: whether the paper's number lies inside that interval")
    rows = summary.to_dict("records")
    setup = len(summary[["backbone", "pretrained"]].drop_duplicates()) > 1
    missing = [_setting_text(r, setup) for r in rows if pd.isna(r["auc_est"])]
    if missing:
        out.append(f"no CI for {', '.join(missing)}: CIs need per-image predictions, which trials of an older "
                   "version did not store (re-run them)")  # fmt: skip
    for r in rows:
        if not pd.isna(r["ci_trials"]) and int(r["ci_trials"]) < int(r["n"]):
            out.append(f"{_setting_text(r, setup)}: the CI uses {int(r['ci_trials'])} of its {int(r['n'])} trials "
                       "(the others have no predictions)")  # fmt: skip
    return out


def format_trial_intervals(per_trial: pd.DataFrame, summary: pd.DataFrame, *, paper: bool = False) -> str:
    """Each trial's own test AP and AUC with their intervals (``comparisons.variant_intervals``'
    ``per_trial`` frame); with ``paper``, whether the paper's number (from ``summary``) lies inside."""
    if per_trial.empty:
        return "no finished trials with predictions\n"
    papers = {_setting_key(r): r for r in summary.to_dict("records")}
    out: list[str] = []
    for dataset, rows in per_trial.groupby("dataset", sort=True):
        _, vary_setup = _setup_header(dataset, rows)
        records = rows.to_dict("records")
        table = pd.DataFrame({"model": rows["paper_name"].to_numpy()})
        if (rows["roi"] != "none").any():
            table["λ1, λ2"] = [_lambda_text(r) for r in records]
        if vary_setup:
            _setup_columns(table, rows)
        table["seed"] = rows["seed"].to_numpy()
        table["trial"] = rows["trial_id"].to_numpy()
        for metric, label in (("ap", "AP"), ("auc", "AUC")):
            table[f"test {label} [95% CI]"] = [
                _with_ci(r[metric], r[f"{metric}_low"], r[f"{metric}_high"]) for r in records
            ]
            if paper:
                table[f"paper {label} in CI"] = [
                    _yes_no(_inside(papers.get(_setting_key(r), {}).get(f"paper_{metric}", np.nan),
                                    r[f"{metric}_low"], r[f"{metric}_high"]))
                    for r in records
                ]  # fmt: skip
        out += [f"{dataset} — test metrics per trial", table.to_string(index=False), ""]
    out += [f"CI: {method}, over test images" for method in dict.fromkeys(per_trial["method"])]
    return "\n".join(out).rstrip() + "\n"


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
    table.loc[~table["in_paper"] | (table["dataset"] != _TABLE3_DATASET), "paper_jaccard"] = np.nan
    table["jaccard_diff"] = table["jaccard_mean"] - table["paper_jaccard"]
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    maps = {name: i for i, name in enumerate(MAP_ORDER)}
    table["_rank"] = table["paper_name"].map(lambda name: rank.get(name, len(rank)))
    table["_map"] = table["map"].map(lambda name: maps.get(name, len(maps)))
    table = table.sort_values(
        ["dataset", "in_paper", "_rank", "paper_name", "lambda1", "lambda2", "backbone", "pretrained", "_map",
         "map", "split"],
        ascending=[True, False, *[True] * 9], kind="stable",
    )  # fmt: skip
    return table.reset_index(drop=True)[columns]


_MAP_TEXT = {"pool3": "pool3", "pool4": "pool4", "cam": "CAM"}
_MASKS_TEXT = {"test": "test masks", "val": "validation masks"}


def format_table3(table: pd.DataFrame) -> str:
    """:func:`summarize_attention`'s frame as text, the paper's Table 3 beside ours."""
    if table.empty:
        return ("no attention scores: Table 3 needs trials of this version that ran on data with lesion masks "
                "(test masks, else validation masks)\n")  # fmt: skip
    out: list[str] = []
    for dataset, rows in table.groupby("dataset", sort=True):
        header, vary_setup = _setup_header(dataset, rows)
        records = rows.to_dict("records")
        frame = pd.DataFrame({"model": rows["paper_name"].to_numpy()})
        frame["λ1, λ2"] = [_lambda_text(r) for r in records]
        if vary_setup:
            _setup_columns(frame, rows)
        frame["map"] = [_MAP_TEXT.get(r["map"], r["map"]) for r in records]
        frame["masks"] = [_MASKS_TEXT.get(r["split"], f"{r['split']} masks") for r in records]
        frame["Jaccard"] = [_mean_std(r["jaccard_mean"], r["jaccard_std"], digits=4) for r in records]
        frame["paper"] = [_number(r["paper_jaccard"], digits=4) for r in records]
        frame["Δ"] = [_number(r["jaccard_diff"], signed=True, digits=4) for r in records]
        frame["n"] = rows["n"].astype(int).to_numpy()
        frame["images"] = [str(r["images_min"]) if r["images_min"] == r["images_max"]
                           else f"{r['images_min']}–{r['images_max']}" for r in records]  # fmt: skip
        title = f"{header} — Table 3: Jaccard of the binarised maps with the lesion masks"
        out += [title, frame.to_string(index=False), ""]
    out.append("Jaccard: per image, the map re-normalised to [0, 1], upsampled to the mask and thresholded at 0.5, "
               "against the lesion mask; averaged over the images (images = per trial), then mean ± sample std "
               "over the n trials (seeds)")  # fmt: skip
    out.append(f"paper: Yan et al., IPMI 2019, Table 3 ({_TABLE3_DATASET} test masks, the paper's λ); "
               "Δ = ours − paper")  # fmt: skip
    if (table["split"] == "val").any():
        out.append("validation masks: the test split of this data has no lesion masks, so those maps were scored "
                   "on the validation split (the paper used the test split)")  # fmt: skip
    return "\n".join(out).rstrip() + "\n"
