"""Every text table the command line prints: the paper-style summary with its intervals,
per-trial intervals, Table 3, paired comparisons and families, operating points, power. The
numbers come computed from :mod:`orchestrator.results.paper`, :mod:`~orchestrator.results.comparisons`
and :mod:`~orchestrator.results.power`; this module only formats them, with one set of number
formatters (a missing value is "—" everywhere), and puts the method under every table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from orchestrator.results.comparisons import ROW_ANSWERS
from orchestrator.results.paper import TABLE3_DATASET, inside, setting_key
from orchestrator.results.stats import METRIC_LABELS

__all__ = [
    "Titled",
    "as_text",
    "format_compare",
    "format_external",
    "format_family",
    "format_summary",
    "format_table3",
    "format_trial_intervals",
    "mean_std",
    "bounds",
    "format_operating_points",
    "format_power",
    "number",
    "p_value",
    "placement",
    "summary_tables",
    "table3_tables",
    "trial_interval_tables",
    "with_ci",
    "yes_no",
]


def _missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))


def number(value: float | None, *, signed: bool = False, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals (a sign with ``signed``); "—" when missing, ±inf spelled out."""
    if _missing(value):
        return "—"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def with_ci(estimate: float | None, low: float | None, high: float | None, *, signed: bool = False) -> str:
    """``estimate [low, high]``; "—" when there is no estimate."""
    if _missing(estimate):
        return "—"
    return f"{number(estimate, signed=signed)} {bounds(low, high, signed=signed)}"


def placement(row: dict) -> str:
    """Where a trial ran (the trials table's placement columns): ``host (ip), GPU 0 ×0.25, 1 CPU``;
    "—" for trials of a version that did not record it."""
    host = row.get("hostname")
    if _missing(host):
        return "—"
    parts = [f"{host} ({row['node_ip']})" if not _missing(row.get("node_ip")) else str(host)]
    gpus, ids = row.get("gpus"), row.get("gpu_ids")
    if not _missing(gpus) and gpus > 0:
        share = f" ×{gpus:g}" if gpus < 1 else ""
        parts.append(f"GPU {ids}{share}" if not _missing(ids) and ids else f"{gpus:g} GPU")
    if not _missing(row.get("cpus")):
        parts.append(f"{row['cpus']:g} CPU")
    return ", ".join(parts)


def bounds(low: float | None, high: float | None, *, signed: bool = False) -> str:
    """``[low, high]``; "—" when there is no interval."""
    if _missing(low):
        return "—"
    return f"[{number(low, signed=signed)}, {number(high, signed=signed)}]"


def mean_std(mean: float, std: float, digits: int = 3) -> str:
    """``mean ± std``; the std is "—" for a single value, the whole cell "—" without a mean."""
    if _missing(mean):
        return "—"
    return f"{mean:.{digits}f} ± {number(std, digits=digits)}"


def p_value(value: float | None) -> str:
    """A p-value with three significant digits."""
    return "—" if _missing(value) else f"{value:.3g}"


def yes_no(value: bool | None) -> str:
    return "—" if _missing(value) else ("yes" if value else "no")


# --------------------------------------------------------------------------- Tables 1–2 and intervals


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


Titled = tuple[str, pd.DataFrame]  # a table's title and its cells, formatted


def as_text(tables: list[Titled], notes: list[str]) -> str:
    """Titled tables and their notes as plain text (pandas' fixed-width layout)."""
    out: list[str] = []
    for title, table in tables:
        out += [title, table.to_string(index=False), ""]
    return "\n".join(out + notes).rstrip() + "\n"


def format_summary(summary: pd.DataFrame, excluded: dict[str, int], *, paper: bool = False) -> str:
    """The summary as text: one paper-style table per dataset, other λ settings after it."""
    return as_text(*summary_tables(summary, excluded, paper=paper))


def summary_tables(summary: pd.DataFrame, excluded: dict[str, int], *, paper: bool = False) -> tuple[list[Titled], list[str]]:
    """The summary's tables and the notes under them, formatted: one paper-style table per
    dataset, then its other λ settings. Every renderer (text, Markdown, LaTeX, the HTML page)
    lays them out; none re-words them.

    A summary that went through :func:`add_intervals` also shows the 95 % interval of each
    setting's expected single-model test AP and AUC (over seeds and test images) and, with
    ``paper``, whether the paper's number lies inside it; with ``ensemble_*`` columns, each
    setting's seed ensemble follows in a table of its own.
    """
    intervals = "auc_low" in summary.columns
    tables: list[Titled] = []
    out: list[str] = []  # the notes
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
                table[f"test {label}"] = [mean_std(m, s) for m, s in
                                          zip(rows[f"test_{metric}_mean"], rows[f"test_{metric}_std"])]  # fmt: skip
                if intervals:
                    table[f"{label} 95% CI"] = [bounds(lo, hi) for lo, hi in
                                                zip(rows[f"{metric}_low"], rows[f"{metric}_high"])]  # fmt: skip
                if paper and in_paper:
                    table[f"paper {label}"] = rows[f"paper_{metric}"].map(number)
                    table[f"Δ {label}"] = rows[f"{metric}_diff"].map(lambda v: number(v, signed=True))
                    if intervals:
                        table[f"paper {label} in CI"] = rows[f"paper_{metric}_in_ci"].map(yes_no)
            table["n"] = rows["n"].astype(int)
            tables.append((title, table.reset_index(drop=True)))
            if "ensemble_auc" in rows.columns:
                tables.append(_ensemble_table(title, rows))
    if not summary.empty:
        out.append("test AP/AUC: mean ± sample SD over seeds of each trial's test metric at its best validation "
                   "epoch: the expected single-model metric")  # fmt: skip
        if intervals:
            out += _interval_notes(summary, paper)
        if paper:
            out.append("paper: Yan et al., IPMI 2019, Tables 1–2; Δ = ours (mean over seeds) − paper")
    if excluded:
        counts = ", ".join(f"{status} {count}" for status, count in sorted(excluded.items()))
        out.append(f"excluded {sum(excluded.values())} trial(s) that did not finish: {counts}")
    return tables, out


def _ensemble_table(title: str, rows: pd.DataFrame) -> Titled:
    table = pd.DataFrame({"model": [f"{name} (ensemble of {int(n)} seeds)" for name, n in
                                    zip(rows["paper_name"], rows["ci_trials"])]})  # fmt: skip
    if (rows["roi"] != "none").any():
        table["λ1, λ2"] = [_lambda_text(r) for r in rows.to_dict("records")]
    for metric, label in (("ap", "AP"), ("auc", "AUC")):
        table[f"test {label} [95% CI]"] = [with_ci(*v) for v in zip(rows[f"ensemble_{metric}"],
                                           rows[f"ensemble_{metric}_low"], rows[f"ensemble_{metric}_high"])]  # fmt: skip
    return f"{title} — seed ensembles (not the settings' numbers)", table


def _interval_notes(summary: pd.DataFrame, paper: bool) -> list[str]:
    out = []
    methods = [m for m in dict.fromkeys(summary["ci_method"]) if isinstance(m, str)]
    out += [f"95% CI of the expected single-model metric: {method}" for method in methods]
    rows = summary.to_dict("records")
    setup = len(summary[["backbone", "pretrained"]].drop_duplicates()) > 1
    single = [_setting_text(r, setup) for r in rows if not pd.isna(r["ci_trials"]) and int(r["ci_trials"]) == 1]
    if single:
        out.append(f"one seed, so the CI covers test-set sampling only, not training randomness: {', '.join(single)}")
    degenerate = [_setting_text(r, setup) for r in rows if any(
        not pd.isna(r[f"{m}_est"]) and pd.isna(r[f"{m}_low"]) for m in ("auc", "ap"))]
    if degenerate:
        out.append(f"no CI (—) for {', '.join(degenerate)}: its seeds' test metrics agree exactly and share no "
                   "test-set covariance, so the data give no variance; run more seeds")
    if "ensemble_method" in summary.columns:
        out += [f"seed ensembles: the metric of the mean probability per image over a setting's seeds (often above "
                f"the mean over seeds); CI: {m}, over test images" for m in dict.fromkeys(summary["ensemble_method"])
                if isinstance(m, str)]  # fmt: skip
    if paper:
        out.append("paper in CI: whether the paper's number (one trained model each) lies inside that interval")
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
    """:func:`trial_interval_tables` as text."""
    return as_text(*trial_interval_tables(per_trial, summary, paper=paper))


def trial_interval_tables(per_trial: pd.DataFrame, summary: pd.DataFrame, *, paper: bool = False) -> tuple[list[Titled], list[str]]:
    """Each trial's own test AP and AUC with their intervals (``comparisons.setting_intervals``'
    ``per_trial`` frame); with ``paper``, whether the paper's number (from ``summary``) lies inside."""
    if per_trial.empty:
        return [], ["no finished trials with predictions"]
    papers = {setting_key(r): r for r in summary.to_dict("records")}
    tables: list[Titled] = []
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
        if "hostname" in rows and rows["hostname"].notna().any():
            table["ran on"] = [placement(r) for r in records]
        for metric, label in (("ap", "AP"), ("auc", "AUC")):
            table[f"test {label} [95% CI]"] = [
                with_ci(r[metric], r[f"{metric}_low"], r[f"{metric}_high"]) for r in records
            ]
            if paper:
                table[f"paper {label} in CI"] = [
                    yes_no(inside(papers.get(setting_key(r), {}).get(f"paper_{metric}", np.nan),
                                    r[f"{metric}_low"], r[f"{metric}_high"]))
                    for r in records
                ]  # fmt: skip
        tables.append((f"{dataset} — test metrics per trial", table))
    return tables, [f"CI: {method}, over test images (the trained model held fixed)"
                    for method in dict.fromkeys(per_trial["method"])]


# --------------------------------------------------------------------------- Table 3


_MAP_TEXT = {"pool3": "pool3", "pool4": "pool4", "cam": "CAM"}


_MASKS_TEXT = {"test": "test masks", "val": "validation masks"}


def format_table3(table: pd.DataFrame) -> str:
    """:func:`summarize_attention`'s frame as text, the paper's Table 3 beside ours."""
    return as_text(*table3_tables(table))


def table3_tables(table: pd.DataFrame) -> tuple[list[Titled], list[str]]:
    """:func:`summarize_attention`'s frame as titled tables, the paper's Table 3 beside ours, and
    the notes under them."""
    if table.empty:
        return [], ["no attention scores: Table 3 needs trials of this version that ran on data with lesion masks "
                    "(test masks, else validation masks)"]  # fmt: skip
    tables: list[Titled] = []
    out: list[str] = []  # the notes
    for dataset, rows in table.groupby("dataset", sort=True):
        header, vary_setup = _setup_header(dataset, rows)
        records = rows.to_dict("records")
        frame = pd.DataFrame({"model": rows["paper_name"].to_numpy()})
        frame["λ1, λ2"] = [_lambda_text(r) for r in records]
        if vary_setup:
            _setup_columns(frame, rows)
        frame["map"] = [_MAP_TEXT.get(r["map"], r["map"]) for r in records]
        frame["masks"] = [_MASKS_TEXT.get(r["split"], f"{r['split']} masks") for r in records]
        frame["Jaccard"] = [mean_std(r["jaccard_mean"], r["jaccard_std"], digits=4) for r in records]
        frame["paper"] = [number(r["paper_jaccard"], digits=4) for r in records]
        frame["Δ"] = [number(r["jaccard_diff"], signed=True, digits=4) for r in records]
        frame["n"] = rows["n"].astype(int).to_numpy()
        frame["images"] = [str(r["images_min"]) if r["images_min"] == r["images_max"]
                           else f"{r['images_min']}–{r['images_max']}" for r in records]  # fmt: skip
        tables.append((f"{header} — Table 3: Jaccard of the binarised maps with the lesion masks", frame))
    out.append("Jaccard: per image, the map re-normalised to [0, 1], upsampled to the mask and thresholded at 0.5, "
               "against the lesion mask; averaged over the images (images = per trial), then mean ± sample std "
               "over the n trials (seeds)")  # fmt: skip
    out.append(f"paper: Yan et al., IPMI 2019, Table 3 ({TABLE3_DATASET} test masks, the paper's λ); "
               "Δ = ours − paper")  # fmt: skip
    if (table["split"] == "val").any():
        out.append("validation masks: the test split of this data has no lesion masks, so those maps were scored "
                   "on the validation split (the paper used the test split)")  # fmt: skip
    return tables, out


# --------------------------------------------------------------------------- comparisons


def _statistic(value: float) -> str:
    return "—" if _missing(value) else ("±inf" if math.isinf(value) else f"{value:+.2f}")


def format_compare(frame: pd.DataFrame, a: str, b: str, metric: str) -> str:
    """``compare_settings``' frame as text: one line per row, then what each kind of row
    answers and how it was computed."""
    label = METRIC_LABELS.get(metric, metric)
    split = frame["split"].iloc[0] if len(frame) else "test"
    table = pd.DataFrame({
        "row": frame["pair"],
        "images": frame["n_images"].astype(int),
        "melanoma": frame["n_pos"].astype(int),
        f"{label} A": frame["metric_a"].map(number),
        f"{label} B": frame["metric_b"].map(number),
        "Δ (A − B)": frame["delta"].map(lambda v: number(v, signed=True)),
        "95% CI of Δ": [bounds(lo, hi, signed=True) for lo, hi in zip(frame["ci_low"], frame["ci_high"])],
        "t / z": frame["z"].map(_statistic),
        "p": frame["p"].map(p_value),
    })  # fmt: skip
    out = [f"{split} {label}: A = {a}  vs  B = {b}", table.to_string(index=False), ""]
    for kind in dict.fromkeys(frame["kind"]):
        rows = frame[frame["kind"] == kind]
        names = {"expected single model": "expected single model", "seed": "seed rows",
                 "ensemble": rows["pair"].iloc[0]}  # fmt: skip
        out.append(f"{names[kind]}: answers \"{ROW_ANSWERS[kind]}\"")
        out += [f"  method: {m}" for m in dict.fromkeys(rows["method"])]
    expected = frame[frame["kind"] == "expected single model"].iloc[0]
    if expected["covers"] != "seeds and test images":
        few = [side for side, n in (("A", expected["seeds_a"]), ("B", expected["seeds_b"])) if int(n) < 2]
        out.append(f"{' and '.join(few)} ran one seed, so the expected single-model interval covers "
                   f"{expected['covers']}: it cannot include {' and '.join(few)}'s training randomness; run more "
                   "seeds to cover it")  # fmt: skip
    elif not bool(expected["paired"]):
        out.append("the settings share fewer than two seeds: their seeds enter unpaired")
    if (frame["kind"] == "seed").any():
        out.append("seed rows hold both trained models fixed (their weights, hence their training randomness): "
                   "their p covers test-set sampling only")  # fmt: skip
    out.append("p is two-sided, per row; for a family of settings against one: report compare PATH 'NAME@*' B "
               "(or all) adds Holm and Benjamini–Hochberg")  # fmt: skip
    return "\n".join(out) + "\n"


def format_family(frame: pd.DataFrame) -> str:
    """``compare_family``' frame as text: the family named, one row per member, raw p,
    Holm-adjusted p and BH q, the method."""
    if frame.empty:
        return "no comparisons\n"
    label = METRIC_LABELS.get(frame["metric"].iloc[0], frame["metric"].iloc[0])
    table = pd.DataFrame({
        "setting": frame["setting"],
        "seeds": frame["seeds"],
        "images": frame["n_images"].astype(int),
        f"{label}": frame["metric_a"].map(number),
        f"{label} ref": frame["metric_ref"].map(number),
        "Δ [95% CI]": [with_ci(d, lo, hi, signed=True) for d, lo, hi in zip(frame["delta"], frame["ci_low"],
                                                                         frame["ci_high"])],  # fmt: skip
        "p": frame["p"].map(p_value),
        "Holm p": frame["p_holm"].map(p_value),
        "BH q": frame["q_bh"].map(p_value),
    })  # fmt: skip
    out = [f"family: {frame['family'].iloc[0]}", table.to_string(index=False), ""]
    out.append("Δ: expected single-model metric of the setting − the reference's; " + frame["method"].iloc[0].split("; ", 1)[1])
    out.append("p: raw, two-sided, per row; Holm p: adjusted for the family-wise error over the family; "
               "BH q: Benjamini–Hochberg false discovery rate over the family")  # fmt: skip
    first = frame.iloc[0]
    if "f" in frame.columns and pd.notna(first["f"]):
        out.append(f"all settings equal? Hillis's F test over the family and the reference, {int(first['f_seeds'])} "
                   f"shared seeds: F = {first['f']:.3g} on ({int(first['f_df1'])}, {first['f_ddf']:.3g}) df, "
                   f"p = {p_value(first['f_p'])}")
    single = frame[frame["covers"] != "seeds and test images"]
    if not single.empty:
        out.append(f"one side ran one seed, so its interval leaves out training randomness: {', '.join(single['setting'])}")
    if "in_family" in frame.columns and not frame["in_family"].all():
        out.append("left out of the family (no Holm p, BH q or star: fewer than 2 paired seeds, so their p covers "
                   f"test images only): {', '.join(frame.loc[~frame['in_family'].astype(bool), 'setting'])}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- operating points, power


def format_operating_points(table: pd.DataFrame) -> str:
    """``paper.summarize_operating_points``' frame as text, one table per dataset."""
    from attnmel.metrics import CALIBRATION_BINS
    from orchestrator.results.tables import OPERATING_COLUMNS, SENSITIVITY_COLUMNS, SPECIFICITY_COLUMNS

    if table.empty:
        return ("no operating points: they are computed from per-image predictions, which these trials (of an older "
                "version) did not store\n")  # fmt: skip
    titles = {**{c: f"spec @ sens {round(100 * s)}%" for c, s in SPECIFICITY_COLUMNS.items()},
              **{c: f"sens @ spec {round(100 * s)}%" for c, s in SENSITIVITY_COLUMNS.items()},
              OPERATING_COLUMNS[-2]: "Brier", OPERATING_COLUMNS[-1]: f"ECE ({CALIBRATION_BINS} bins)"}  # fmt: skip
    out: list[str] = []
    for dataset, rows in table.groupby("dataset", sort=False):
        header, vary_setup = _setup_header(dataset, rows)
        records = rows.to_dict("records")
        frame = pd.DataFrame({"model": rows["paper_name"].to_numpy()})
        if (rows["roi"] != "none").any():
            frame["λ1, λ2"] = [_lambda_text(r) for r in records]
        if vary_setup:
            _setup_columns(frame, rows)
        for column in OPERATING_COLUMNS:
            frame[titles[column]] = [mean_std(r[f"{column}_mean"], r[f"{column}_std"]) for r in records]
        frame["n"] = rows["n"].astype(int).to_numpy()
        out += [f"{header} — test operating points and calibration", frame.to_string(index=False), ""]
    out.append("mean ± sample SD over seeds of each trial's value on the test split (best validation epoch). "
               "spec @ sens: the ISIC 2017 challenge's secondary metrics, specificity at the first ROC point "
               "whose sensitivity reaches the level, as its scorer takes them; sens @ spec: the levels read the other "
               "way (an extra), sensitivity interpolated between the curve's points; Brier: mean (p − y)²; ECE: "
               f"Σ (n_b/N)·|melanoma share − mean p| over {CALIBRATION_BINS} equal-width bins")
    return "\n".join(out) + "\n"


def format_power(plan, a: str, b: str) -> str:
    """``power.PowerPlan`` as text: what was assumed, seeds needed, the smallest detectable Δ."""
    label = METRIC_LABELS.get(plan.metric, plan.metric)
    out = [f"power: {label} of A = {a} − B = {b}", ""]
    rows = [
        ("Δ to detect", f"{number(plan.delta, signed=True)} ({plan.delta_source})"),
        ("seed-to-seed SD of the per-seed Δ", number(math.sqrt(plan.seed_var))),
        ("shared test-set SE of Δ (does not shrink with seeds)", number(math.sqrt(plan.image_var))),
        (f"SE of Δ with {plan.seeds_now} seeds per setting", number(plan.se_now)),
        (f"smallest Δ detectable with {plan.seeds_now} seeds", f"±{number(plan.detectable_now)}"),
        ("smallest Δ detectable with any number of seeds", f"±{number(plan.floor)}"),
    ]
    if plan.delta == 0:
        needed = "— (Δ = 0: nothing to detect)"
    elif plan.seeds_needed is None:
        needed = (f"none up to {_max_seeds()}: |Δ| is below what this test set can resolve (±{number(plan.floor)}); "
                  "more test images, not seeds, are needed")  # fmt: skip
    else:
        needed = str(plan.seeds_needed)
        if plan.seeds_range:
            ends = [str(k) if k is not None else f"over {_max_seeds()}" for k in plan.seeds_range]
            needed += f" ({ends[0]}–{ends[1]} over the 80 % range of the pilot's seed variance)"
    rows.append((f"seeds per setting to detect Δ (α = {plan.alpha:g}, power {plan.power:g})", needed))
    width = max(len(k) for k, _ in rows)
    out += [f"{k:<{width}}  {v}" for k, v in rows]
    out += ["", f"from: {plan.source}", f"method: {plan.method}"]
    return "\n".join(out) + "\n"


def _max_seeds() -> int:
    from orchestrator.results.power import MAX_SEEDS

    return MAX_SEEDS


# --------------------------------------------------------------------------- external test sets


def format_external(summary: pd.DataFrame) -> str:
    """:func:`orchestrator.results.external.external_summary` as text: one table per training
    dataset and external set, with each setting's 95 % interval where there is one ("" when
    there is no external set)."""
    out: list[str] = []
    intervals = "auc_low" in summary.columns and summary["auc_low"].notna().any()
    for (dataset, external), rows in summary.groupby(["dataset", "external"], sort=True):
        table = pd.DataFrame({"model": rows["paper_name"], "λ1, λ2": [_lambda_text(r) for r in rows.to_dict("records")]})
        for metric, label in (("auc", "AUC"), ("ap", "AP")):
            table[label] = [mean_std(m, s) for m, s in zip(rows[f"{metric}_mean"], rows[f"{metric}_std"])]
            if intervals:
                table[f"{label} 95% CI"] = [bounds(lo, hi) for lo, hi in zip(rows[f"{metric}_low"], rows[f"{metric}_high"])]
        table["n"] = rows["n"].astype(int)
        out += [f"{dataset} → external test set {external}", table.to_string(index=False), ""]
    if out:
        out.append("external: mean ± sample std over seeds of the AUC/AP of each trial's best-validation-epoch model")
    if intervals:
        out += [f"external 95% CI of the expected single-model metric, over seeds and the external set's images: {m}"
                for m in dict.fromkeys(summary["ci_method"]) if isinstance(m, str)]  # fmt: skip
        missing = summary[summary["auc_low"].isna()]
        if not missing.empty:
            names = ", ".join(f"{r['paper_name']} on {r['external']}" for r in missing.to_dict("records"))
            out.append(f"no external CI for {names}: its trials stored no per-image rows for that set")
    return "\n".join(out) + ("\n" if out else "")
