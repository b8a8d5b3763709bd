"""The claims table (``claims.evaluate_claims``' frame) as titled cells and notes, for every
format ``report claims --format`` writes and for the sweep page."""

from __future__ import annotations

import pandas as pd

from orchestrator.results.stats import METRIC_LABELS
from orchestrator.results.text import Titled, number, p_value, with_ci

__all__ = ["claims_tables", "verdict_cell"]

_SIGNS = {"better": ">", "worse": "<"}


def _measure(row: dict) -> str:
    if row["measure"] == "jaccard":
        return "Jaccard"
    return f"test {METRIC_LABELS.get(row['measure'], row['measure'])}"


def _comparison(row: dict) -> str:
    a, b = row["a"], row["b"]
    if row["measure"] == "jaccard":
        a, b = f"{a} {row['map_a']}", f"{b} {row['map_b']}"
    return f"{a} {_SIGNS[row['direction']]} {b}"


def verdict_cell(row: dict) -> str:
    """The verdict, with the seeds that would settle it or what the sweep lacks."""
    verdict = row["verdict"]
    if verdict == "not settled" and not pd.isna(row["seeds_needed"]):
        return f"not settled ({int(row['seeds_needed'])} seeds per setting would settle Δ = "\
               f"{number(row['estimate'], signed=True)})"
    if verdict == "not settled" and int(row["seeds"]) >= 2 and row["estimate"] != 0:
        return "not settled (no number of seeds settles this Δ on these test images)"
    if verdict == "not in this sweep":
        return f"not in this sweep (lacks {row['lacks']})"
    return verdict


def claims_tables(frame: pd.DataFrame) -> tuple[list[Titled], list[str]]:
    """One table of every claim: where the paper makes it, the comparison, the paper's numbers,
    the sweep's Δ with its 95 % interval, p and Holm p, the verdict and its notes."""
    records = frame.to_dict("records")
    table = pd.DataFrame({
        "claim": [r["claim"] for r in records],
        "paper": [r["where"] for r in records],
        "comparison": [_comparison(r) for r in records],
        "measure": [_measure(r) for r in records],
        "paper's A, B": [f"{number(r['paper_a'])}, {number(r['paper_b'])}" + ("" if r["paper_supports"] else " (!)")
                         for r in records],
        "data": [r["evaluated_on"] or "—" for r in records],
        "seeds": [int(r["seeds"]) if r["seeds"] else "—" for r in records],
        "Δ = A − B [95% CI]": [with_ci(r["estimate"], r["ci_low"], r["ci_high"], signed=True) for r in records],
        "p": [p_value(r["p"]) for r in records],
        "Holm p": [p_value(r["p_holm"]) for r in records],
        "verdict": [verdict_cell(r) for r in records],
    })
    notes = [f"{r['claim']}: {r['notes']}" for r in records if r["notes"]]
    notes += [f"{r['claim']}: the paper's own numbers do not point the claimed way ({number(r['paper_a'])} vs "
              f"{number(r['paper_b'])})" for r in records if not r["paper_supports"]]
    methods = [m for m in dict.fromkeys(r["method"] for r in records) if m]
    notes += [f"evidence: {m}" for m in methods]
    notes.append("verdict: supported / contradicted when the Holm-adjusted p (over every claim evaluated here) is "
                 "below 0.05 with Δ in / against the claimed direction; else not settled. The estimand is the "
                 "expected single-model metric (mean over seeds, training split fixed); regularised settings are "
                 "taken at the paper's λ.")
    return [("the paper's claims, answered by this sweep", table)], notes
