"""The report's tables in the formats ``report show --format`` writes: text, Markdown, LaTeX, CSV.

Text, Markdown and LaTeX lay out the same titled tables of formatted cells and the same notes
(:func:`orchestrator.results.text.summary_tables`, :func:`~orchestrator.results.text.table3_tables`),
so the three say the same thing to the digit. CSV is for programs: the numbers of the results
model itself (:func:`csv_frame`), unformatted, one row per setting (or per setting and map).
"""

from __future__ import annotations

import pandas as pd

from orchestrator.results.text import Titled, as_text

__all__ = ["FORMATS", "as_latex", "as_markdown", "csv_frame", "numeric_cell", "render"]

FORMATS = ("text", "markdown", "latex", "csv")

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip
# Characters of our cells that LaTeX's default fonts lack in text mode.
_LATEX_SYMBOLS = {"±": r"$\pm$", "λ": r"$\lambda$", "Δ": r"$\Delta$", "—": "---", "−": "$-$", "–": "--"}


def _md(text: object) -> str:
    return str(text).replace("|", r"\|").replace("\n", " ")


def numeric_cell(cell: object) -> bool:
    """Whether a formatted cell holds a number (or "—", a missing one): such columns align right."""
    text = str(cell)
    return text == "—" or text[:1].isdigit() or (text[:1] in "+-−" and text[1:2].isdigit())


def as_markdown(tables: list[Titled], notes: list[str]) -> str:
    """GitHub-flavoured Markdown: a level-3 heading and a pipe table per table, notes as a list."""
    out: list[str] = []
    for title, table in tables:
        numeric = [table[c].map(numeric_cell).all() for c in table.columns]
        out += [f"### {_md(title)}", "", "| " + " | ".join(_md(c) for c in table.columns) + " |",
                "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]  # fmt: skip
        out += ["| " + " | ".join(_md(v) for v in row) + " |" for row in table.itertuples(index=False)]
        out.append("")
    out += [f"- {_md(note)}" for note in notes]
    return "\n".join(out).rstrip() + "\n"


def _tex(text: object) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for symbol, command in _LATEX_SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def as_latex(tables: list[Titled], notes: list[str]) -> str:
    """One ``table`` environment (booktabs rules) per table, the notes as a paragraph after them;
    needs ``\\usepackage{booktabs}``."""
    out: list[str] = []
    for title, table in tables:
        spec = "l" + "r" * (len(table.columns) - 1)
        out += [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_tex(title)}}}", rf"\begin{{tabular}}{{{spec}}}",
                r"\toprule", " & ".join(_tex(c) for c in table.columns) + r" \\", r"\midrule"]  # fmt: skip
        out += [" & ".join(_tex(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    if notes:
        out.append(r"\noindent " + r" \\ ".join(_tex(note) for note in notes))
    return "\n".join(out).rstrip() + "\n"


def csv_frame(frame: pd.DataFrame) -> str:
    """A results-model frame as CSV: every column, numbers unrounded, missing values empty."""
    return frame.to_csv(index=False)  # floats as their shortest repr: they read back exactly


def render(tables: list[Titled], notes: list[str], fmt: str) -> str:
    """Titled tables and notes in ``fmt`` ("text", "markdown" or "latex")."""
    renderers = {"text": as_text, "markdown": as_markdown, "latex": as_latex}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(renderers)} (csv takes the frame)")
    return renderers[fmt](tables, notes)
