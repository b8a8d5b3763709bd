"""The paper's claims as data, and what a sweep says about each: supported, contradicted or not
settled, with the evidence.

:data:`CLAIMS` holds every comparison the paper's text draws from its Tables 1–3 (Yan, Kawahara
& Hamarneh, IPMI 2019, §3.2–3.3): where it is made, the two settings it compares, on which
dataset and measure, in which direction, and the paper's own numbers — including where those
numbers do not bear out the sentence (AttnMel-CNN-Dermo's AUC 0.864 against AttnMel-CNN's
0.872).

:func:`evaluate_claims` answers them from a sweep's tables. The claims on a test metric are
contrasts of one Obuchowski–Rockette–Hillis analysis of every setting they involve (over the
seeds all of them ran, on the images all those trials scored: one error term, as
``report compare``'s families use); the Table 3 claims compare trials' Jaccard indices paired by
seed (a paired t test over seeds: the attention table holds one mean per trial, so test-image
sampling is not in it). Holm's adjustment runs over every claim evaluated together; a verdict is
*supported* (Holm p < α in the claimed direction), *contradicted* (Holm p < α the other way) or
*not settled* (then with the seeds per setting that would settle the observed Δ, from the power
plan), or *not in this sweep* (naming what it lacks). A one-seed comparison is never settled (its
p covers test images only) and stays out of Holm; a from-scratch run, another crop size or
another dataset than the claim's are noted beside the verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from orchestrator.results import comparisons
from orchestrator.results.build import terminated
from orchestrator.results.orh import DEFAULT_COVARIANCE, covariance_text, error_covariance, orh_contrasts
from orchestrator.results.paper import PAPER_LAMBDAS, paper_jaccard, paper_results
from orchestrator.results.stats import DEFAULT_RESAMPLES, holm, metric_function, resampled_metric, t_quantile
from orchestrator.results.stats import t_two_sided_p

__all__ = [
    "CLAIMS", "CLAIM_COLUMNS", "DIRECTIONS", "PAPER_CROP", "VERDICTS", "Claim", "evaluate_claims",
]

DIRECTIONS = ("better", "worse")  # A than B
VERDICTS = ("supported", "contradicted", "not settled", "not in this sweep")
PAPER_CROP = 224  # §3.1: random 224 × 224 crops of the 256 × 256 images
_ALPHA = 0.05


@dataclass(frozen=True)
class Claim:
    """One comparison the paper draws: setting ``a`` is ``direction`` than ``b`` on ``measure``
    (a test metric, "auc" or "ap", or "jaccard" of ``map_a``/``map_b`` with the lesion masks).
    ``a``/``b`` are paper names; regularised ones are taken at the paper's λ."""

    id: str
    text: str
    where: str
    dataset: str
    measure: str
    a: str
    b: str
    direction: str
    map_a: str = ""
    map_b: str = ""

    def paper_numbers(self) -> tuple[float, float]:
        """The paper's own values of A and B (Tables 1–3)."""
        if self.measure == "jaccard":
            table = paper_jaccard().set_index(["model", "map"])["jaccard"]
            return float(table[(self.a, self.map_a)]), float(table[(self.b, self.map_b)])
        table = paper_results()
        rows = table[table["dataset"] == self.dataset].set_index("model")[self.measure]
        return float(rows[self.a]), float(rows[self.b])

    def paper_supports(self) -> bool:
        """Whether the paper's own numbers point the claimed way."""
        a, b = self.paper_numbers()
        return a > b if self.direction == "better" else a < b


def _architecture() -> list[Claim]:
    where = {"isic2016": "§3.2, Table 1", "isic2017": "§3.2, Table 2"}
    out = []
    for dataset in ("isic2016", "isic2017"):
        tag = dataset[-4:]
        out += [
            Claim(f"attn-vs-vgg-{tag}", "AttnMel-CNN achieves better performance than VGG-16 despite ~100M fewer "
                  "parameters", where[dataset], dataset, "auc", "AttnMel-CNN", "VGG-16", "better"),
            Claim(f"attn-vs-gap-{tag}", "VGG-16-GAP is surpassed by the proposed AttnMel-CNN", where[dataset],
                  dataset, "auc", "AttnMel-CNN", "VGG-16-GAP", "better"),
            Claim(f"gap-vs-vgg-{tag}", "VGG-16-GAP slightly outperforms the original VGG-16", where[dataset],
                  dataset, "auc", "VGG-16-GAP", "VGG-16", "better"),
            Claim(f"melcnn-vs-attn-{tag}", "Mel-CNN (no attention) yields worse performance than AttnMel-CNN",
                  where[dataset], dataset, "auc", "Mel-CNN", "AttnMel-CNN", "worse"),
        ]
    return out


def _regularisation() -> list[Claim]:
    where = "§3.2, Table 2"
    return [
        Claim("lesion-vs-attn", "encouraging attention to the lesion yields better performance", where, "isic2017",
              "auc", "AttnMel-CNN-Lesion", "AttnMel-CNN", "better"),
        Claim("dermo-vs-attn", "encouraging attention to dermoscopic features yields better performance", where,
              "isic2017", "auc", "AttnMel-CNN-Dermo", "AttnMel-CNN", "better"),
        Claim("bkg-vs-attn", "improper attention (AttnMel-CNN-Bkg) harms the performance", where, "isic2017", "auc",
              "AttnMel-CNN-Bkg", "AttnMel-CNN", "worse"),
    ]


def _table3() -> list[Claim]:
    where = "§3.3, Table 3"
    return [
        Claim("attention-vs-cam", "the learnable attention highlights the relevant regions better than CAM", where,
              "isic2017", "jaccard", "AttnMel-CNN", "VGG-16-GAP", "better", "pool4", "cam"),
        Claim("pool4-vs-pool3", "the deeper layer's attention (pool-4) overlaps the lesion more than pool-3's",
              where, "isic2017", "jaccard", "AttnMel-CNN", "AttnMel-CNN", "better", "pool4", "pool3"),
        Claim("regularised-overlap", "the regularisation concentrates the attention on the relevant regions",
              where, "isic2017", "jaccard", "AttnMel-CNN-Lesion", "AttnMel-CNN", "better", "pool4", "pool4"),
    ]


# Every claim, in the paper's order; the one owner of what the paper claims.
CLAIMS: tuple[Claim, ...] = (*_architecture(), *_regularisation(), *_table3())

CLAIM_COLUMNS = [
    "claim", "text", "where", "dataset", "measure", "a", "b", "map_a", "map_b", "direction", "paper_a", "paper_b", "paper_supports",
    "evaluated_on", "seeds", "n_images", "estimate", "ci_low", "ci_high", "p", "p_holm", "verdict", "seeds_needed",
    "lacks", "notes", "method",
]


# --------------------------------------------------------------------------- a sweep's evidence


def _setting_name(done: pd.DataFrame, dataset: str, paper: str) -> str:
    """How ``report compare`` names the claim's setting: ``DATASET:NAME[@λ1,λ2]``."""
    part = _trials_of(done, dataset, paper)
    regularised = bool((part["roi"] != "none").any())
    return f"{dataset}:{paper}" + (f"@{PAPER_LAMBDAS[0]:g},{PAPER_LAMBDAS[1]:g}" if regularised else "")


def _trials_of(done: pd.DataFrame, dataset: str, paper: str) -> pd.DataFrame:
    """The finished trials of ``paper`` on ``dataset``, at the paper's λ where it is regularised."""
    part = done[(done["dataset"] == dataset) & (done["paper_name"] == paper)]
    regularised = part["roi"] != "none"
    at_lambda = np.isclose(part["lambda1"], PAPER_LAMBDAS[0]) & np.isclose(part["lambda2"], PAPER_LAMBDAS[1])
    return part[~regularised | at_lambda]


def _lacks(done: pd.DataFrame, dataset: str, names: Sequence[str]) -> list[str]:
    out = []
    for name in dict.fromkeys(names):
        if _trials_of(done, dataset, name).empty:
            other = done[(done["dataset"] == dataset) & (done["paper_name"] == name)]
            out.append(f"{name} at the paper's λ {PAPER_LAMBDAS[0]:g}, {PAPER_LAMBDAS[1]:g}" if len(other) else name)
    return out


def _crop(params: object) -> int | None:
    try:
        return int(json.loads(str(params))["train"]["data"]["crop_size"])
    except (ValueError, KeyError, TypeError):
        return None


def _notes(claim: Claim, evaluated_on: str, parts: list[pd.DataFrame], seeds: int) -> list[str]:
    rows = pd.concat(parts)
    notes = []
    if seeds < 2:
        notes.append("one seed: its p covers test images only, so the claim about trained models stays open")
    if "pretrained" in rows and not rows["pretrained"].fillna(False).astype(bool).all():
        notes.append("trained from scratch (the paper fine-tunes ImageNet weights)")
    crops = {c for c in rows["params"].map(_crop) if c is not None} if "params" in rows else set()
    if crops and crops != {PAPER_CROP}:
        notes.append(f"{'/'.join(map(str, sorted(crops)))} px crops (the paper's: {PAPER_CROP})")
    if evaluated_on != claim.dataset:
        notes.append(f"claimed on {claim.dataset}, evaluated on {evaluated_on}")
    return notes


def _by_seed(part: pd.DataFrame) -> dict[int, pd.Series]:
    return {int(row["seed"]): row for _, row in part.sort_values("seed").iterrows()}


def _metric_evidence(claims: list[tuple[Claim, str]], tables, done: pd.DataFrame, scored: dict, metric: str,
                     n_resamples: int, seed: int, covariance: str) -> dict[str, dict]:
    """The test-metric claims of one dataset as contrasts of one ORH analysis of every setting they
    involve, over their common seeds (settings sharing fewer than 2 seeds: each claim on its own
    two settings' analysis, as ``report compare``)."""
    names = list(dict.fromkeys(n for c, _ in claims for n in (c.a, c.b)))
    dataset = claims[0][1]
    parts = {n: _trials_of(done, dataset, n) for n in names}
    by_seed = {n: _by_seed(p) for n, p in parts.items()}
    common = sorted(set.intersection(*(set(s) for s in by_seed.values())))
    out: dict[str, dict] = {}
    if len(common) >= 2:
        frames = [scored[(str(by_seed[n][s]["sweep"]), str(by_seed[n][s]["trial_id"]))] for n in names for s in common]
        y, probs = comparisons.common_images(frames, f"the {dataset} claims")
        probs = np.stack(probs)
        fn = metric_function(metric)
        theta = np.array([fn(y, p) for p in probs]).reshape(len(names), len(common))
        boot = resampled_metric(metric, y, probs, n_resamples, seed) if covariance == "bootstrap" else None
        cov = error_covariance(metric, y, probs, covariance, bootstrap=boot)
        pairs = [(names.index(c.a), names.index(c.b)) for c, _ in claims]
        method = (f"one Obuchowski–Rockette–Hillis analysis of the {len(names)} settings these claims compare "
                  f"({len(common)} shared seeds, {y.size} test images; {covariance_text(covariance, n_resamples, seed)})")
        for (claim, _), est in zip(claims, orh_contrasts(theta, cov, pairs)):
            out[claim.id] = {"seeds": len(common), "n_images": int(y.size), "estimate": est.estimate,
                             "ci_low": est.low, "ci_high": est.high, "p": est.p, "method": method}
        return out
    for claim, _ in claims:  # too few shared seeds for one analysis: the pair's own comparison
        row = comparisons.compare_settings(
            tables.trials, tables.predictions, _setting_name(done, dataset, claim.a),
            _setting_name(done, dataset, claim.b), metric=metric, n_resamples=n_resamples, seed=seed,
            covariance=covariance,
        ).iloc[0]
        paired = bool(row["paired"])
        out[claim.id] = {"seeds": min(int(row["seeds_a"]), int(row["seeds_b"])) if paired else 1,
                         "n_images": int(row["n_images"]), "estimate": float(row["delta"]),
                         "ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"]), "p": float(row["p"]),
                         "method": f"the two settings' own comparison ({row['method']})"}
    return out


def _jaccard_evidence(claim: Claim, dataset: str, done: pd.DataFrame, attention: pd.DataFrame) -> dict | None:
    """A Table 3 claim: the per-seed difference of the trials' mean Jaccard, paired t over seeds."""
    a, b = _by_seed(_trials_of(done, dataset, claim.a)), _by_seed(_trials_of(done, dataset, claim.b))
    split = "test" if (attention["split"] == "test").any() else "val"
    values = attention[attention["split"] == split].set_index(["sweep", "trial_id", "map"])["jaccard_mean"]
    diffs = []
    for s in sorted(set(a) & set(b)):
        ka = (str(a[s]["sweep"]), str(a[s]["trial_id"]), claim.map_a)
        kb = (str(b[s]["sweep"]), str(b[s]["trial_id"]), claim.map_b)
        if ka in values.index and kb in values.index:
            diffs.append(float(values[ka]) - float(values[kb]))
    if not diffs:
        return None
    d = np.asarray(diffs)
    k = d.size
    method = f"paired t over {k} seeds of the trials' mean {split} Jaccard (test-image sampling not in it)"
    if k < 2:
        return {"seeds": 1, "n_images": np.nan, "estimate": float(d[0]), "ci_low": np.nan, "ci_high": np.nan,
                "p": np.nan, "method": method, "seed_var": np.nan}
    se = float(d.std(ddof=1) / math.sqrt(k))
    half = t_quantile(k - 1, 1 - _ALPHA / 2) * se
    p = t_two_sided_p(d.mean() / se, k - 1) if se > 0 else (1.0 if d.mean() == 0 else 0.0)
    return {"seeds": k, "n_images": np.nan, "estimate": float(d.mean()), "ci_low": float(d.mean() - half),
            "ci_high": float(d.mean() + half), "p": float(p), "method": method, "seed_var": float(d.var(ddof=1))}


def _seeds_to_settle(claim: Claim, dataset: str, row: dict, tables, done: pd.DataFrame, metric: str,
                     n_resamples: int, seed: int, covariance: str) -> int | None:
    from orchestrator.results.power import plan_seeds, power_from_sweep

    try:
        if claim.measure == "jaccard":
            if not row.get("seed_var", 0) > 0:
                return None
            return plan_seeds(row["estimate"], row["seed_var"], 0.0, int(row["seeds"])).seeds_needed
        return power_from_sweep(tables.trials, tables.predictions, _setting_name(done, dataset, claim.a),
                                _setting_name(done, dataset, claim.b),
                                metric=metric, n_resamples=n_resamples, seed=seed,
                                covariance=covariance).seeds_needed
    except ValueError:
        return None


def _target_datasets(done: pd.DataFrame) -> dict[str, str]:
    """The dataset each claim is evaluated on: its own when the sweep has it; else, for a sweep of
    other datasets, the first of them, once per comparison (the 2017 claim before the 2016 one)."""
    present = sorted(set(done["dataset"]))
    out: dict[str, str] = {}
    taken: set[tuple] = set()
    for claim in sorted(CLAIMS, key=lambda c: c.dataset != "isic2017"):
        key = (claim.measure, claim.a, claim.b, claim.map_a, claim.map_b)
        if claim.dataset in present:
            out[claim.id] = claim.dataset
            taken.add(key)
    for claim in sorted(CLAIMS, key=lambda c: c.dataset != "isic2017"):
        key = (claim.measure, claim.a, claim.b, claim.map_a, claim.map_b)
        others = [d for d in present if d not in ("isic2016", "isic2017")]
        if claim.id not in out and key not in taken and others:
            out[claim.id] = others[0]
            taken.add(key)
    return out


def evaluate_claims(
    tables, *, metric: str = "auc", n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
    covariance: str = DEFAULT_COVARIANCE, alpha: float = _ALPHA,
) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` against the sweep's ``tables`` (one row each, in the paper's
    order; columns :data:`CLAIM_COLUMNS`). The test-metric claims use ``metric`` (the paper's
    sentences rest on both AP and AUC; AUC by default, the challenge's metric)."""
    metric_function(metric)
    done, _ = terminated(tables.trials)
    targets = _target_datasets(done)
    scored: dict = {}
    if not tables.predictions.empty:
        _, scored = comparisons.scored_trials(tables.trials, tables.predictions, "test")
    rows: dict[str, dict] = {}
    evaluable: dict[str, list[tuple[Claim, str]]] = {}
    for claim in CLAIMS:
        paper_a, paper_b = claim.paper_numbers()
        row = {"claim": claim.id, "text": claim.text, "where": claim.where, "dataset": claim.dataset,
               "measure": claim.measure if claim.measure == "jaccard" else metric, "a": claim.a, "b": claim.b,
               "map_a": claim.map_a, "map_b": claim.map_b,
               "direction": claim.direction, "paper_a": paper_a, "paper_b": paper_b,
               "paper_supports": claim.paper_supports(), "evaluated_on": targets.get(claim.id, ""), "seeds": 0,
               "n_images": np.nan, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan,
               "p_holm": np.nan, "verdict": "not in this sweep", "seeds_needed": pd.NA, "lacks": "", "notes": "",
               "method": ""}
        if metric == "ap" and claim.measure == "auc":
            paper_a, paper_b = (paper_results().query("dataset == @claim.dataset").set_index("model")["ap"]
                                .reindex([claim.a, claim.b]))
            row.update(paper_a=paper_a, paper_b=paper_b,
                       paper_supports=bool(paper_a > paper_b) == (claim.direction == "better"))
        rows[claim.id] = row
        dataset = targets.get(claim.id)
        if dataset is None:
            row["lacks"] = f"{claim.dataset} trials"
            continue
        lacking = _lacks(done, dataset, (claim.a, claim.b))
        if claim.measure != "jaccard" and not scored:
            lacking.append("per-image test predictions")
        if claim.measure == "jaccard" and tables.attention.empty:
            lacking.append("attention Jaccard rows (lesion masks)")
        if lacking:
            row["lacks"] = ", ".join(lacking)
            continue
        if claim.measure == "jaccard":
            evidence = _jaccard_evidence(claim, dataset, done, tables.attention)
            if evidence is None:
                row["lacks"] = f"{claim.map_a}/{claim.map_b} Jaccard of paired trials"
                continue
            row.update(evidence)
        else:
            evaluable.setdefault(dataset, []).append((claim, dataset))
    for dataset, claims in evaluable.items():
        for claim_id, evidence in _metric_evidence(claims, tables, done, scored, metric, n_resamples, seed,
                                                   covariance).items():
            rows[claim_id].update(evidence)
    frame = pd.DataFrame([{c: rows[k].get(c) for c in CLAIM_COLUMNS} | {"seed_var": rows[k].get("seed_var")}
                          for k in rows])
    in_holm = frame["estimate"].notna() & frame["p"].notna() & (frame["seeds"] >= 2)
    frame["p_holm"] = holm(frame["p"].where(in_holm).to_numpy(dtype=float))
    for i, row in frame.iterrows():
        if pd.isna(row["estimate"]):
            continue
        claim = next(c for c in CLAIMS if c.id == row["claim"])
        sign = 1 if claim.direction == "better" else -1
        verdict = "not settled"
        if in_holm[i] and row["p_holm"] < alpha:
            verdict = "supported" if sign * row["estimate"] > 0 else "contradicted"
        frame.at[i, "verdict"] = verdict
        parts = [_trials_of(done, row["evaluated_on"], n) for n in (claim.a, claim.b)]
        frame.at[i, "notes"] = "; ".join(_notes(claim, row["evaluated_on"], parts, int(row["seeds"])))
        if verdict == "not settled" and row["seeds"] >= 2 and row["estimate"] != 0:
            frame.at[i, "seeds_needed"] = _seeds_to_settle(claim, row["evaluated_on"], row.to_dict(), tables, done,
                                                           metric, n_resamples, seed, covariance)
    frame["seeds_needed"] = frame["seeds_needed"].astype("Int64")
    return frame[CLAIM_COLUMNS]
