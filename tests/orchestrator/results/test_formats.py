"""`report show --format`: text, Markdown and LaTeX lay out the same cells; CSV carries the
model's numbers exactly."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pandas as pd
import pytest

import orchestrator.cli.results as commands_results
from _results_fixtures import scored_sweep
from orchestrator.cli import main
from orchestrator.results.build import load_tables
from orchestrator.results.formats import as_latex, as_markdown, csv_frame, render
from orchestrator.results.summary import summary_model
from orchestrator.results.text import summary_tables

RESAMPLES = 200  # the statistics are tested in test_stats.py; these tests are about layout
NUMBER = re.compile(r"[+-]?\d+\.\d+")


def _show(argv: list[str]) -> str:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(commands_results, "_MIN_RESAMPLES", RESAMPLES)
        assert main(["report", "show", *argv, "--resamples", str(RESAMPLES)]) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    sweep_dir, _ = scored_sweep(tmp_path_factory.mktemp("formats"), lambdas=((0.001, 0.01), (0.1, 1.0)))
    return sweep_dir


def _markdown_tables(text: str) -> list[list[list[str]]]:
    tables, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif rows:
            tables.append(rows)
            rows = []
    return tables


def test_text_markdown_and_latex_show_the_same_numbers(sweep):
    text = _show([str(sweep), "--paper"])
    markdown = _show([str(sweep), "--paper", "--format", "markdown"])
    latex = _show([str(sweep), "--paper", "--format", "latex"])
    assert NUMBER.findall(text) and NUMBER.findall(markdown) == NUMBER.findall(text)
    assert NUMBER.findall(latex.replace("$-$", "-")) == NUMBER.findall(text)


def test_markdown_tables_are_well_formed_and_hold_the_model_cells(sweep):
    model = summary_model(load_tables(sweep), n_resamples=RESAMPLES)
    tables, notes = summary_tables(model.summary, model.excluded, paper=True)
    parsed = _markdown_tables(as_markdown(tables, notes))
    assert len(parsed) == len(tables) == 2
    for (_, frame), rows in zip(tables, parsed):
        header, rule, *body = rows
        assert header == list(frame.columns) and len(rule) == len(header)
        assert all(set(cell) <= set("-:") for cell in rule)
        assert body == [[str(v) for v in row] for row in frame.itertuples(index=False)]


def test_markdown_and_latex_escape_what_their_syntax_uses():
    frame = pd.DataFrame({"model": ["a|b", "x_y & 50%"], "AUC": ["0.5 ± 0.1", "—"]})
    markdown = as_markdown([("t|1", frame)], ["n|ote"])
    assert _markdown_tables(markdown)[0][2] == [r"a\|b", "0.5 ± 0.1"]
    latex = as_latex([("ISIC_2017 100%", frame)], ["λ1 = 0.1 # note"])
    assert r"\caption{ISIC\_2017 100\%}" in latex
    assert r"x\_y \& 50\% & ---" in latex and r"0.5 $\pm$ 0.1" in latex and r"$\lambda$1 = 0.1 \# note" in latex
    body = [line for line in latex.splitlines() if line.endswith(r"\\") and "toprule" not in line]
    assert all(len(re.findall(r"(?<!\\)&", line)) == 1 for line in body)  # two columns on every row
    with pytest.raises(ValueError, match="unknown format"):
        render([], [], "html")


def test_csv_holds_the_summary_numbers_exactly(sweep):
    model = summary_model(load_tables(sweep), n_resamples=RESAMPLES)
    back = pd.read_csv(io.StringIO(_show([str(sweep), "--format", "csv"])))
    assert list(back.columns) == list(model.summary.columns) and len(back) == len(model.summary)
    for column in ("test_auc_mean", "test_auc_std", "auc_low", "auc_high", "ap_est", "lambda1"):
        np.testing.assert_array_equal(back[column].to_numpy(float), model.summary[column].to_numpy(float))
    assert csv_frame(model.summary) == _show([str(sweep), "--format", "csv"])


def test_table3_in_every_format(sweep):
    text = _show([str(sweep), "--table3"])
    markdown = _show([str(sweep), "--table3", "--format", "markdown"])
    assert NUMBER.findall(markdown) == NUMBER.findall(text)
    back = pd.read_csv(io.StringIO(_show([str(sweep), "--table3", "--format", "csv"])))
    assert {"paper_name", "map", "jaccard_mean", "paper_jaccard"} <= set(back.columns)


def test_csv_with_per_trial_is_one_line(sweep, capsys):
    assert main(["report", "show", str(sweep), "--format", "csv", "--per-trial"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnmel: error: --format csv writes one table") and len(err.splitlines()) == 1
