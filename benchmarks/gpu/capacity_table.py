"""The capacity part's table (``capacity.md``): one trial's memory per case (measured reserved
+ the CUDA context, else :mod:`attnmel.capacity`'s estimate), the most trials that fit in 90 %
of the card, the ``resources.gpus`` that packs them, and the sharing runs' images/s."""

from __future__ import annotations

from typing import Any

from attnmel import capacity
from attnmel.model_names import paper_name, split_token
from benchmarks.gpu.report import fmt


def gib(x: Any) -> float | None:
    """Bytes in GiB; None stays None."""
    return x / capacity.GIB if isinstance(x, (int, float)) else None


def fits_table(rows: list[dict[str, Any]], card_bytes: int, context: int | None
               ) -> list[dict[str, Any]]:
    """Per case: one trial's memory (measured reserved + the context, else the estimate), the
    most that fit in 90 % of the card and the ``resources.gpus`` that packs them."""
    table = []
    for r in rows:
        if "data_bytes" not in r:
            continue
        measured = r.get("max_reserved_bytes")
        ctx = context if context is not None else int(capacity.CONTEXT_GIB * capacity.GIB)
        trial = measured + ctx if measured is not None else r["estimate_bytes"]
        n = capacity.trials_that_fit(trial, card_bytes)
        table.append({**{k: r[k] for k in ("paper_name", "dataset", "images", "batch_size")},
                      "trial_bytes": trial, "source": "measured" if measured else "estimated",
                      "trials_per_card": n, "gpus": capacity.fraction_for(n) if n else None})
    return table


def markdown(part: dict[str, Any]) -> str:
    """``capacity.md``: the fraction table and the sharing runs."""
    card = part["card"]
    lines = [f"Trials per card on {card['name']} ({card['memory_bytes'] / capacity.GIB:.1f} GiB, "
             f"90 % planned); one trial = peak reserved + CUDA context "
             f"({fmt(gib(part.get('context_bytes')), '.2f')} GiB measured) or the estimate.", "",
             "| variant | dataset (images) | batch | data GiB | allocated GiB | reserved GiB "
             "| trial GiB | estimate GiB | trials | resources.gpus |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r, f in zip([r for r in part["memory"] if "data_bytes" in r], part["fits"]):
        lines.append(
            f"| {r['paper_name']} | {r['dataset']} ({r['images']:,}) | {r['batch_size']} "
            f"| {gib(r['data_bytes']):.2f} | {fmt(gib(r['max_allocated_bytes']), '.2f')} "
            f"| {fmt(gib(r['max_reserved_bytes']), '.2f')} | {gib(f['trial_bytes']):.2f} "
            f"({f['source']}) | {gib(r['estimate_bytes']):.2f} | {f['trials_per_card']} "
            f"| {fmt(f['gpus'], 'g')} |")
    lines += ["", "| variant | trials sharing | aggregate images/s | × one trial |",
              "| --- | --- | --- | --- |"]
    for s in part["sharing"]:
        lines.append(f"| {paper_name(*split_token(s['family']))} | {s['trials']} "
                     f"| {fmt(s.get('aggregate_images_per_second'), '.0f')} "
                     f"| {fmt(s.get('over_one'), '.2f')} |")
    return "\n".join(lines) + "\n"
