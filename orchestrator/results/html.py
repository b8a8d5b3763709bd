"""A sweep's :class:`~orchestrator.results.page.Page` as one self-contained HTML file.

Formats only: every number and sentence comes from the page model, numbers through the text
tables' formatters (:mod:`orchestrator.results.text`), so the page and ``report show`` print the
same digits. The file carries its styles, a few lines of script (sorting the trials table) and
its pictures (PNG as ``data:`` URLs); a Content-Security-Policy forbids every other source, so it
opens from ``file://`` with nothing fetched. A page written while the sweep runs reloads itself
every ``refresh_seconds`` until the sweep's last page, which does not.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from attnmel.atomic import atomic_write
from orchestrator.layout.folders import PAGE
from orchestrator.layout.status import ENDED, TrialStatus
from orchestrator.results.formats import numeric_cell as _numeric
from orchestrator.results.page import Figure, Page, SpecReader, page_model
from orchestrator.results.stats import DEFAULT_RESAMPLES
from orchestrator.results.text import Titled, number, placement, summary_tables, table3_tables

__all__ = ["REFRESH_SECONDS", "TRIAL_COLUMNS", "render_page", "write_html", "write_page"]

REFRESH_SECONDS = 30  # how often a running sweep's page reloads itself

# Nothing but this file's own styles, script and data: URLs (no network, no other file).
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_CSS = """
:root { --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --band: #f6f8fa; --bad: #b42318; --bad-bg: #fdecea;
        --warn-bg: #fff8e1; --ok: #1a7f37; --accent: #0b5cad; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; color: var(--ink); background: #fff; font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto,
       "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.7rem; margin: 0 0 0.3rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.4rem 0 0.4rem; }
p, li { max-width: 80ch; }
a { color: var(--accent); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85em; }
pre { background: var(--band); padding: 10px 12px; overflow-x: auto; border-radius: 4px; }
pre.report { font-size: 0.78rem; }
.state { padding: 8px 12px; border-radius: 4px; background: var(--band); border-left: 4px solid var(--accent); }
.state.live { background: var(--warn-bg); border-left-color: #b7791f; }
nav ol { columns: 2; padding-left: 1.4rem; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.4rem 0 0.6rem; font-size: 0.86rem; }
caption { text-align: left; color: var(--muted); padding: 0 0 4px; caption-side: top; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
thead th { background: var(--band); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
tr.failed { background: var(--bad-bg) !important; }
td.error { color: var(--bad); overflow-wrap: anywhere; min-width: 12ch; max-width: 36ch; }
.status-ERROR { color: var(--bad); font-weight: 600; }
.status-TERMINATED { color: var(--ok); }
th button { font: inherit; color: inherit; background: none; border: 0; padding: 0; cursor: pointer; }
th button::after { content: " \\2195"; color: var(--muted); }
th[aria-sort="ascending"] button::after { content: " \\2191"; color: var(--ink); }
th[aria-sort="descending"] button::after { content: " \\2193"; color: var(--ink); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0.4rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
figure { margin: 0.6rem 0 1rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption, .note { color: var(--muted); font-size: 0.9rem; }
ul.notes li.cannot::marker { content: "\\2717  "; color: var(--bad); }
ul.notes li.can::marker { content: "\\2713  "; color: var(--ok); }
@media print {
  @page { size: A4; margin: 12mm; }
  html { font-size: 9pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  h2 { break-after: avoid; margin-top: 1.2rem; }
  .wide, pre { overflow: visible; }
  pre { white-space: pre-wrap; overflow-wrap: anywhere; }
  pre.report { font-size: 6pt; }
  table { width: 100%; font-size: 0.8rem; table-layout: auto; }
  th, td { padding: 2px 3px; }
  thead th, td.num { white-space: normal; }
  thead { display: table-header-group; }
  tr, figure { break-inside: avoid; }
  th button::after { content: none; }
  figure img { max-height: 240mm; }
  .state.live { border-left-color: #b7791f; }
}
"""

# Sorts a table by the clicked column (numbers by data-value, missing values last either way);
# opens the collapsed spec for printing.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, column) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.kind === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) {
        var cell = row.cells[column];
        if (!numeric) { return cell.textContent.trim(); }
        var value = cell.dataset.value;
        return value === undefined || value === "" ? NaN : Number(value);
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (numeric) {
          if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
          return ascending ? x - y : y - x;
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
window.addEventListener("beforeprint", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
});
"""

_SECTIONS = (
    ("claims", "The paper's claims, answered"),
    ("what-ran", "What ran"),
    ("paper-table", "Test AP and AUC beside the paper"),
    ("comparisons", "Comparisons against AttnMel-CNN"),
    ("table3", "Table 3: attention overlap with the lesion"),
    ("operating", "Operating points and calibration"),
    ("curves", "λ sensitivity and per-epoch curves"),
    ("fig3", "Fig. 3: attention maps"),
    ("trials", "Every trial"),
    ("methods", "Methods, and what this page can tell"),
)


# --------------------------------------------------------------------------- pieces


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _when(stamp: datetime | None) -> str:
    return "—" if stamp is None else stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _lambda(value: Any) -> str:
    return "—" if _missing(value) else f"{float(value):g}"


@dataclass(frozen=True, slots=True)
class _Cell:
    """A table cell: its text, for a number the exact value the table sorts by, its class."""

    text: str
    value: float | None = None
    css: str = ""
    link: str | None = None  # an anchor on this page the cell links to


def _num(value: Any, text: str | None = None) -> _Cell:
    exact = None if _missing(value) else float(value)
    return _Cell(number(exact) if text is None else text, exact, "num")


def _int(value: Any) -> _Cell:
    exact = None if _missing(value) else int(value)
    return _Cell("—" if exact is None else str(exact), exact, "num")


def _table(
    headers: Sequence[tuple[str, str]], rows: Iterable[Sequence[_Cell | str]], *, caption: str | None = None,
    sortable: bool = False, table_id: str | None = None, row_css: Sequence[str] | None = None,
) -> str:  # fmt: skip
    """``headers``: (label, "num" | "text"); a row's cells are strings or :class:`_Cell`."""
    attrs = (f' id="{_e(table_id)}"' if table_id else "") + (' class="sortable"' if sortable else "")
    out = [f'<div class="wide"><table{attrs}>']
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>")
    for label, kind in headers:
        inner = f'<button type="button">{_e(label)}</button>' if sortable else _e(label)
        out.append(f'<th scope="col" data-kind="{kind}">{inner}</th>')
    out.append("</tr></thead><tbody>")
    for k, row in enumerate(rows):
        css = row_css[k] if row_css else ""
        out.append(f'<tr class="{css}">' if css else "<tr>")
        for cell in row:
            cell = cell if isinstance(cell, _Cell) else _Cell(str(cell))
            attrs = f' class="{cell.css}"' if cell.css else ""
            if cell.value is not None:
                attrs += f' data-value="{cell.value!r}"'
            inner = f'<a href="#{_e(cell.link)}">{_e(cell.text)}</a>' if cell.link else _e(cell.text)
            out.append(f"<td{attrs}>{inner}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _figure(figure: Figure | None, caption: str, missing: str | None) -> str:
    if figure is None:
        return f'<p class="note">Not shown: {_e(missing or "no data")}.</p>'
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")  # fmt: skip


def _section(anchor: str, number_: int, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{number_}. {_e(title)}</h2>{body}</section>'


# --------------------------------------------------------------------------- sections


def _state(page: Page, refresh_seconds: int) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in page.statuses.items()) or "no trials yet"
    written = f"written {_when(page.written)}"
    if page.live:
        text = (f"Sweep running: {page.done} of {page.total} trials done ({counts}); {written}. "
                f"This page reloads itself every {refresh_seconds} s until the sweep ends.")  # fmt: skip
        return f'<p class="state live" role="status">{_e(text)}</p>'
    if page.done < page.total:
        folders = " ".join(str(run.folder) for run in page.runs)
        text = (f"{page.done} of {page.total} trials ended ({counts}); the others are still running or were "
                f"interrupted (continue with attnmel sweep resume {folders}); {written}.")  # fmt: skip
        return f'<p class="state live" role="status">{_e(text)}</p>'
    return f'<p class="state" role="status">{_e(f"Sweep ended: {page.done} of {page.total} trials done ({counts}); {written}.")}</p>'


def _what_ran(page: Page) -> str:
    out = []
    for run in page.runs:
        resources = "—" if run.spec is None else f"{run.spec.resources.cpus:g} CPU, {run.spec.resources.gpus:g} GPU"
        facts = [
            ("folder", str(run.folder)),
            ("dataset", ", ".join(run.data) or ("—" if run.spec is None else run.spec.dataset.name)),
            ("code version", run.code_version or "—"),
            ("resources per trial", resources),
            ("started", _when(run.created)),
            ("last result", _when(run.last_report)),
            ("wall time", _duration(run.wall_seconds)),
            ("trial time", f"{run.trial_hours:.2f} h"),
            ("GPU-hours", "—" if run.gpu_hours is None else f"{run.gpu_hours:.2f}"),
            ("trials", f"{sum(run.statuses.values())} of {run.expected_trials}: "
                       + (", ".join(f"{n} {s}" for s, n in run.statuses.items()) or "none yet")),
        ]  # fmt: skip
        if len(page.runs) > 1:
            out.append(f"<h3>{_e(run.name)}</h3>")
        out.append('<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>")
        for dataset, splits in run.data.items():
            rows = [[split, _int(c.get("images")), _int(c.get("melanoma")), _int(c.get("other"))]
                    for split, c in splits.items()]  # fmt: skip
            out.append(_table([("split", "text"), ("images", "num"), ("melanoma", "num"), ("other", "num")], rows,
                              caption=f"{dataset}: images per split (as the trials saw them)"))  # fmt: skip
        if not run.data:
            out.append('<p class="note">Images per split: unknown (no finished trial recorded them).</p>')
        if run.spec_text:
            out.append(f"<details><summary>The sweep spec</summary><pre>{_e(run.spec_text)}</pre></details>")
        else:
            out.append('<p class="note">The sweep spec is not stored in this folder (no sweep.json).</p>')
    return "".join(out)


def _titled(tables: list[Titled], notes: list[str]) -> str:
    """Tables laid out for ``report show`` (:mod:`orchestrator.results.text`), as HTML: the same
    cells and notes; a column of numbers is right-aligned."""
    out = []
    for title, table in tables:
        kinds = [("num" if table[c].map(_numeric).all() else "text") for c in table.columns]
        rows = [[_Cell(str(v), css="num" if kind == "num" else "") for v, kind in zip(row, kinds)]
                for row in table.itertuples(index=False)]  # fmt: skip
        out.append(f"<h3>{_e(title)}</h3>" + _table(list(zip(map(str, table.columns), kinds)), rows))
    return "".join(out) + "".join(f'<p class="note">{_e(note)}</p>' for note in notes)


def _paper_table(page: Page) -> str:
    tables, notes = summary_tables(page.summary, page.excluded, paper=True)
    return _titled(tables, notes + ([page.interval_note] if page.interval_note else []))


def _text(page: Page, key: str, what: str) -> str:
    """A statistics text table, as ``report`` prints it, or why it is missing."""
    if key in page.texts:
        return f'<pre class="report">{_e(page.texts[key].rstrip())}</pre>'
    return f'<p class="note">No {_e(what)}: {_e(page.text_notes.get(key, "not computed"))}.</p>'


def _comparisons(page: Page) -> str:
    return ("<h3>Every setting against AttnMel-CNN</h3>" + _text(page, "family", "comparisons")
            + "<h3>Power of the headline comparison</h3>" + _text(page, "power", "power line"))  # fmt: skip


def _operating(page: Page) -> str:
    return ("<h3>Operating points</h3>" + _text(page, "operating", "operating points")
            + "<h3>Reliability diagrams</h3>"
            + _figure(page.figures.get("calibration"), "Calibration of each trial's test probabilities: share of "
                      "melanomas per bin of predicted probability; the diagonal is perfect calibration. With a λ grid: the "
                      "settings the paper reports (attnmel plot calibration draws every one).",
                      page.figure_notes.get("calibration")))  # fmt: skip


def _claims(page: Page) -> str:
    """The claims table (as ``report claims`` prints it), each verdict linking to its evidence
    below: the claim's sentence, Δ and its interval, p, Holm p, how it was computed, its notes."""
    from orchestrator.results.claims_table import claims_tables

    if page.claims is None:
        return f'<p class="note">No claims table: {_e(page.claims_note or "not computed")}.</p>'
    [(title, table)], notes = claims_tables(page.claims)
    kinds = [("num" if table[c].map(_numeric).all() else "text") for c in table.columns]
    verdict = list(table.columns).index("verdict")
    rows = []
    for (_, cells), record in zip(table.iterrows(), page.claims.to_dict("records")):
        row = [_Cell(str(v), css="num" if kind == "num" else "") for v, kind in zip(cells, kinds)]
        row[verdict] = _Cell(str(cells["verdict"]), link=f"evidence-{record['claim']}")
        rows.append(row)
    evidence = []
    for r in page.claims.to_dict("records"):
        section = "table3" if r["measure"] == "jaccard" else "paper-table"
        parts = [f"“{r['text']}” ({r['where']}); paper: {number(r['paper_a'])} vs {number(r['paper_b'])}"]
        if not _missing(r["estimate"]):
            parts.append(f"this sweep: Δ {number(r['estimate'], signed=True)} "
                         f"[{number(r['ci_low'], signed=True)}, {number(r['ci_high'], signed=True)}], "
                         f"p {_p(r['p'])}, Holm p {_p(r['p_holm'])}; {r['method']}")
        if r["notes"]:
            parts.append(str(r["notes"]))
        if r["lacks"]:
            parts.append(f"the sweep lacks {r['lacks']}")
        evidence.append(f'<li id="evidence-{_e(r["claim"])}"><b>{_e(r["claim"])}</b>: {_e("; ".join(parts))} '
                        f'(<a href="#{section}">the settings\' numbers</a>)</li>')
    return (f"<h3>{_e(title)}</h3>" + _table(list(zip(map(str, table.columns), kinds)), rows)
            + "".join(f'<p class="note">{_e(note)}</p>' for note in notes)
            + "<h3>Evidence, claim by claim</h3><ul>" + "".join(evidence) + "</ul>")


def _p(value: Any) -> str:
    return "—" if _missing(value) else f"{float(value):.3g}"


def _table3(page: Page) -> str:
    return _titled(*table3_tables(page.table3))


def _curves(page: Page) -> str:
    return (
        "<h3>λ sensitivity</h3>"
        + _figure(page.figures.get("sensitivity"), "Mean validation and test AUC per λ1 × λ2 cell and ROI (± sample "
                  "std over seeds, n trials); blue better, red worse than unregularised AttnMel-CNN; dashed: the "
                  "paper's λ; ★: the cell's difference from AttnMel-CNN survives Benjamini–Hochberg q < 0.05 over "
                  "every cell (on the sweep's last page).", page.figure_notes.get("sensitivity"))
        + "<h3>Validation AUC per epoch</h3>"
        + _figure(page.figures.get("curves"), "Validation AUC per epoch, mean over seeds, band min–max; regularised "
                  "models at the paper's λ where they ran there.", page.figure_notes.get("curves"))
    )  # fmt: skip


def _fig3(page: Page) -> str:
    return _figure(page.figures.get("attention"), "Top row: the evaluated centre crops (first by image id, half "
                   "melanoma); below: each model's maps of them (its best finished trial by validation AUC), p = "
                   "its melanoma probability.", page.figure_notes.get("attention"))  # fmt: skip


TRIAL_COLUMNS = (
    ("trial", "text"), ("model", "text"), ("λ1", "num"), ("λ2", "num"), ("seed", "num"), ("status", "text"),
    ("best epoch", "num"), ("epochs", "num"), ("val AUC", "num"), ("val AP", "num"), ("test AUC", "num"),
    ("test AP", "num"), ("wall s", "num"), ("ran on", "text"), ("error", "text"),
)  # fmt: skip


def _trials(page: Page) -> str:
    trials = page.trials
    if trials.empty:
        return '<p class="note">No trial folders yet.</p>'
    many = trials["sweep"].nunique() > 1
    headers = ([("sweep", "text")] if many else []) + list(TRIAL_COLUMNS)
    body, css = [], []
    for r in trials.to_dict("records"):
        status = str(r["status"])
        cells: list[_Cell | str] = [r["sweep"]] if many else []
        cells += [
            r["trial_id"], "—" if _missing(r["paper_name"]) else r["paper_name"],
            _num(r["lambda1"], _lambda(r["lambda1"])), _num(r["lambda2"], _lambda(r["lambda2"])), _int(r["seed"]),
            _Cell(status, css=f"status-{status}"), _int(r["best_epoch"]), _int(r["epochs_run"]),
            _num(r["val_auc"]), _num(r["val_ap"]), _num(r["test_auc"]), _num(r["test_ap"]),
            _num(r["wall_seconds"], number(r["wall_seconds"], digits=1)), placement(r),
            _Cell("" if _missing(r["error"]) else str(r["error"]), css="error"),
        ]  # fmt: skip
        body.append(cells)
        css.append("failed" if status == TrialStatus.ERROR else "")
    failed = trials[trials["status"] == TrialStatus.ERROR]
    intro = ""
    if len(failed):
        intro = (f'<p class="note" role="note"><strong>{len(failed)} trial(s) errored</strong> (highlighted; '
                 "message: the last line of the trial's error.txt).</p>")  # fmt: skip
    running = int((trials["status"] == TrialStatus.INCOMPLETE).sum())
    if running:
        intro += f'<p class="note">{running} trial(s) INCOMPLETE: still running, or stopped with the driver.</p>'
    return (intro + _table(headers, body, sortable=True, table_id="trials-table", row_css=css,
                           caption="Click a column's heading to sort; numbers at each trial's best validation "
                                   "epoch.")  # fmt: skip
            + f'<p class="note">Statuses: {_e(", ".join(ENDED))} are final; INCOMPLETE may still run.</p>')


def _methods(page: Page) -> str:
    can = [n for n in page.notes if n.can]
    cannot = [n for n in page.notes if not n.can]
    items = "".join(f'<li class="cannot">{_e(n.text)}</li>' for n in cannot)
    items += "".join(f'<li class="can">{_e(n.text)}</li>' for n in can)
    return (f"<h3>Methods paragraph</h3><p>{_e(page.methods)}</p>"
            f'<h3>What a reader can and cannot conclude</h3><ul class="notes">{items}</ul>')  # fmt: skip


# --------------------------------------------------------------------------- the page


def render_page(page: Page, *, refresh_seconds: int = REFRESH_SECONDS) -> str:
    """The page as one HTML document (a running sweep's page reloads every ``refresh_seconds``)."""
    bodies = {
        "claims": _claims(page), "what-ran": _what_ran(page), "paper-table": _paper_table(page), "comparisons": _comparisons(page),
        "table3": _table3(page), "operating": _operating(page),
        "curves": _curves(page), "fig3": _fig3(page), "trials": _trials(page), "methods": _methods(page),
    }  # fmt: skip
    sections = "".join(_section(anchor, k, title, bodies[anchor]) for k, (anchor, title) in enumerate(_SECTIONS, 1))
    contents = "".join(f'<li><a href="#{anchor}">{_e(title)}</a></li>' for anchor, title in _SECTIONS)
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">' if page.live else ""
    title = f"AttnMel sweep {page.title}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{refresh}<meta name="generator" content="attnmel report html">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><main><header><h1>{_e(title)}</h1>{_state(page, refresh_seconds)}</header>"
        f'<nav aria-label="Contents"><ol>{contents}</ol></nav>'
        f"{sections}</main><script>{_SCRIPT}</script></body></html>\n"
    )


def write_html(page: Page, out: str | Path, *, refresh_seconds: int = REFRESH_SECONDS) -> Path:
    """Write ``page`` to ``out`` atomically: a reader (or a reload) sees the old page or the new one."""
    out = Path(out)
    atomic_write(out, render_page(page, refresh_seconds=refresh_seconds))
    return out


def write_page(
    path: str | Path, out: str | Path | None = None, *, read_spec: SpecReader, live: bool = False,
    attention: bool = True, n_resamples: int | None = None, tables: Any = None, summary: Any = None,
    refresh_seconds: int = REFRESH_SECONDS, covariance: str | None = None,
) -> Path:
    """Gather and write the page of the sweep (or results root) at ``path``; ``out`` defaults to
    ``path/report.html``. See :func:`orchestrator.results.page.page_model` for the options."""
    from orchestrator.results.orh import DEFAULT_COVARIANCE

    page = page_model(path, read_spec=read_spec, live=live, attention=attention, tables=tables, summary=summary,
                      n_resamples=DEFAULT_RESAMPLES if n_resamples is None else n_resamples,
                      covariance=DEFAULT_COVARIANCE if covariance is None else covariance)
    return write_html(page, Path(path) / PAGE if out is None else out, refresh_seconds=refresh_seconds)
