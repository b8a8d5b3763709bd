"""The sweep page in a real headless Chromium: offline, not blank, sortable, equal to the tables,
accessible, readable on screen and on A4, and honest about errored, single-seed, older and
running sweeps."""

from __future__ import annotations

import io
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _browser import A4_CONTENT_PX, Offline, chromium, skip_reason
from _results_fixtures import epoch_metrics, identity, lambda_sweep, scored_sweep, write_trial
from orchestrator.results.build import write_tables
from orchestrator.results.html import TRIAL_COLUMNS, write_page
from orchestrator.layout.params import tune_params
from orchestrator.sweep.spec import spec_from_dict, spec_to_dict

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

ERROR = "RuntimeError: CUDA out of memory <script>alert('x')</script> & more"
SPEC = {
    "name": "pages",
    "dataset": {"name": "isic2017", "root": "/data/ISIC2017"},
    "train": {"model": {"weights": "none"}, "optim": {"epochs": 3, "lr": 0.02}, "data": {"image_size": 40, "crop_size": 32}},
    "grid": {"variants": ["attnmel", "attnmel+lesion", "vgg16_gap"], "seeds": [0, 1], "lambda1": [0.001, 0.1],
             "lambda2": [0.01]},
    "resources": {"cpus": 2, "gpus": 0.5},
}  # fmt: skip
COUNTS = {"train": {"images": 2000, "melanoma": 374, "other": 1626}, "val": {"images": 15, "melanoma": 5, "other": 10},
          "test": {"images": 45, "melanoma": 15, "other": 30}}  # fmt: skip


def _write_meta(sweep_dir: Path, spec: dict) -> None:
    meta = {"name": spec["name"], "spec": spec_to_dict(spec_from_dict(spec)), "code_version": "0.1.0+test",
            "created": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    (sweep_dir / "sweep.json").write_text(json.dumps(meta))


def _error_out(trial_dir: Path, message: str) -> None:
    """Turn a finished trial folder into one that failed for good before its first epoch; its
    identity then comes from its params.json, written as Tune writes it."""
    for checkpoint in trial_dir.glob("checkpoint_*"):
        shutil.rmtree(checkpoint)
    (trial_dir / "result.json").unlink()
    point = {"variant": "attnmel+lesion", "runtime.seed": 1, "loss.lambda1": 0.1, "loss.lambda2": 0.01}
    (trial_dir / "params.json").write_text(json.dumps(tune_params(spec_from_dict(SPEC).train, point)))
    (trial_dir / "error.txt").write_text(f"Failure # 1 (occurred at 2026-01-01_00-00-00)\n  File \"x.py\"\n{message}\n")


@pytest.fixture(scope="module")
def main_sweep(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """The spec's 8 trials with predictions and Table 3 scores, one of them errored; its trials table."""
    root = tmp_path_factory.mktemp("pages")
    sweep_dir, _ = scored_sweep(root, "pages", lambdas=((0.001, 0.01), (0.1, 0.01)), seeds=2)
    _write_meta(sweep_dir, SPEC)
    trial_dirs = sorted(p.parent for p in sweep_dir.glob("*/params.json"))
    errored = next(d for d in trial_dirs if '"lambda1": 0.1' in (d / "params.json").read_text()
                   and '"seed": 1' in (d / "params.json").read_text())  # fmt: skip
    _error_out(errored, ERROR)
    final = next(trial_dirs[0].glob("checkpoint_*"))
    (final / "data_info.json").write_text(json.dumps({"counts": COUNTS}))
    _, tables = write_tables(sweep_dir)
    write_page(sweep_dir, read_spec=spec_from_dict, attention=False, n_resamples=1000)
    return sweep_dir, pd.read_parquet(sweep_dir / "trials.parquet")


@pytest.fixture(scope="module")
def browser():
    with chromium() as context:
        yield context


@pytest.fixture
def opened(browser, main_sweep):
    pages: list[Offline] = []

    def open_(path: Path | None = None, **size) -> Offline:
        page = Offline(browser, path or main_sweep[0] / "report.html", **size)
        pages.append(page)
        return page

    yield open_
    for page in pages:
        page.close()


# --------------------------------------------------------------------------- reading the page back


class _Tables(HTMLParser):
    """Every table of a page: its id and rows of (text, data-value) cells, headers apart."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list | None = None
        self.images: list[dict] = []
        self.headings: list[int] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"id": attrs.get("id"), "head": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = [tag, "", attrs.get("data-value")]
        elif tag == "img":
            self.images.append(attrs)
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.headings.append(int(tag[1]))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            kind, text, value = self._cell
            row = self.tables[-1]["rows"][-1]
            row.append((text.strip(), value))
            if kind == "th":
                self.tables[-1]["head"] = [t for t, _ in row]
            self._cell = None


def _parsed(path: Path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text())
    return parser


def _trials_table(parser: _Tables) -> pd.DataFrame:
    table = next(t for t in parser.tables if t["id"] == "trials-table")
    rows = [r for r in table["rows"] if r and len(r) == len(table["head"]) and r[0][0] != table["head"][0]]
    return pd.DataFrame([{h: c for h, c in zip(table["head"], row)} for row in rows])


# --------------------------------------------------------------------------- the tests


def test_loads_from_file_without_network_or_console_errors(opened):
    page = opened()
    assert page.page.title() == "AttnMel sweep pages"
    assert page.blocked == [] and page.console_errors == [] and page.page_errors == []
    # The error message is text on the page, not markup: its <script> never ran.
    assert ERROR in page.page.inner_text("#trials-table")


def test_screenshot_is_not_blank(opened):
    from PIL import Image

    page = opened()
    shot = np.asarray(Image.open(io.BytesIO(page.page.screenshot(full_page=True))).convert("L"))
    assert shot.shape[0] > 2000  # a long page: every section drawn
    assert (shot < 200).mean() > 0.02  # text, tables and figures, not a white sheet
    assert len(np.unique(shot)) > 50


def test_trials_table_sorts_when_a_heading_is_clicked(opened, main_sweep):
    page = opened()
    column = [h for h, _ in TRIAL_COLUMNS].index("test AUC") + 1

    def values() -> list[float]:
        cells = page.page.locator(f"#trials-table tbody tr td:nth-child({column})")
        return [float(v) if v else math.nan for v in cells.evaluate_all("cs => cs.map(c => c.dataset.value || '')")]

    heading = page.page.locator("#trials-table thead th", has_text="test AUC")
    heading.locator("button").click()
    ascending = values()
    finite = [v for v in ascending if not math.isnan(v)]
    assert finite == sorted(finite) and len(finite) == 7
    assert math.isnan(ascending[-1])  # the errored trial has no test AUC: last either way
    assert heading.get_attribute("aria-sort") == "ascending"
    heading.locator("button").click()
    descending = values()
    assert [v for v in descending if not math.isnan(v)] == sorted(finite, reverse=True) and math.isnan(descending[-1])
    page.page.locator("#trials-table thead th", has_text="model").locator("button").click()
    names = page.page.locator("#trials-table tbody tr td:nth-child(2)").all_inner_texts()
    assert names == sorted(names) and len(set(names)) == 3
    assert page.console_errors == [] and page.page_errors == []


def test_numbers_equal_trials_parquet(main_sweep):
    sweep_dir, trials = main_sweep
    shown = _trials_table(_parsed(sweep_dir / "report.html"))
    shown.index = [text for text, _ in shown["trial"]]
    assert sorted(shown.index) == sorted(trials["trial_id"])
    columns = {"val AUC": "val_auc", "val AP": "val_ap", "test AUC": "test_auc", "test AP": "test_ap",
               "λ1": "lambda1", "λ2": "lambda2", "seed": "seed", "best epoch": "best_epoch", "wall s": "wall_seconds"}  # fmt: skip
    for row in trials.itertuples():
        cells = shown.loc[row.trial_id]
        for label, column in columns.items():
            text, value = cells[label]
            expected = getattr(row, column)
            if pd.isna(expected):
                assert value is None and text == "—", (row.trial_id, label)
            else:
                assert float(value) == float(expected), (row.trial_id, label)  # the exact number sorts
                if column in ("val_auc", "val_ap", "test_auc", "test_ap"):
                    assert text == f"{expected:.3f}"
        assert cells["status"][0] == row.status and cells["model"][0] == row.paper_name
        assert cells["error"][0] == ("" if pd.isna(row.error) else row.error)
    assert (trials["status"] == "ERROR").sum() == 1 and ERROR in set(trials["error"].dropna())


def test_paper_table_means_are_the_trials_means(main_sweep):
    """Section 2's mean ± std over seeds, against pandas on trials.parquet (cells as `report show`
    prints them)."""
    sweep_dir, trials = main_sweep
    parser = _parsed(sweep_dir / "report.html")
    done = trials[trials["status"] == "TERMINATED"]
    expected = done.groupby(["paper_name", "lambda1"])["test_auc"].agg(["mean", "std", "size"])
    found = 0
    for table in parser.tables:
        if "test AUC" not in table["head"] or table["id"] == "trials-table":
            continue
        for row in table["rows"][1:]:
            cells = dict(zip(table["head"], row))
            lam = float(cells["λ1"][0]) if "λ1" in cells else (0.001 if "Lesion" in cells["model"][0] else 0.0)
            mean, std, n = expected.loc[(cells["model"][0], lam)]
            std_text = "—" if pd.isna(std) else f"{std:.3f}"
            assert cells["test AUC"][0] == f"{mean:.3f} ± {std_text}" and int(cells["n"][0]) == n
            found += 1
    assert found == len(expected) == 4


def test_images_have_alt_text_and_headings_form_an_outline(tmp_path, main_sweep):
    parser = _parsed(main_sweep[0] / "report.html")
    assert parser.images and all(img.get("alt", "").strip() for img in parser.images)
    assert all(img["src"].startswith("data:image/png;base64,") for img in parser.images)
    levels = parser.headings
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:])), levels  # no level skipped
    assert levels.count(2) == 10  # the claims first, then what ran … methods


def test_the_page_opens_with_the_claims_and_each_verdict_links_to_its_evidence(opened):
    page = opened()
    assert page.page.inner_text("section h2") == "1. The paper's claims, answered"
    links = page.page.eval_on_selector_all("#claims td a", "els => els.map(e => e.getAttribute('href'))")
    assert len(links) == 14  # one verdict per claim
    for href in links:
        target = page.page.query_selector(href)
        assert target is not None and target.inner_text().startswith(href.removeprefix("#evidence-")), href
    assert "lesion-vs-attn" in page.page.inner_text("#claims")


_FITS = """() => {
  const width = document.documentElement.clientWidth;
  const tables = Array.from(document.querySelectorAll("table"));
  return {width: width, page: document.documentElement.scrollWidth,
          tables: tables.map(t => ({right: t.getBoundingClientRect().right, scroll: t.parentElement.scrollWidth,
                                    box: t.parentElement.clientWidth})),
          font: parseFloat(getComputedStyle(document.body).fontSize)};
}"""


def test_readable_at_1280_px(opened):
    page = opened(width=1280)
    fit = page.page.evaluate(_FITS)
    assert fit["page"] <= fit["width"] and fit["font"] >= 14
    assert all(t["right"] <= fit["width"] and t["scroll"] <= t["box"] for t in fit["tables"]), fit


def test_prints_on_a4_with_the_tables_unclipped(opened, main_sweep, tmp_path):
    from pypdf import PdfReader

    page = opened(width=A4_CONTENT_PX)
    page.page.emulate_media(media="print")
    fit = page.page.evaluate(_FITS)
    assert fit["page"] <= fit["width"], fit
    assert all(t["right"] <= fit["width"] + 0.5 and t["scroll"] <= t["box"] for t in fit["tables"]), fit
    pdf = PdfReader(io.BytesIO(page.page.pdf(format="A4", print_background=True)))
    width = float(pdf.pages[0].mediabox.width)
    text, outside = [], []

    def visit(part, cm, tm, font, size):
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        if part.strip() and not 0 <= x < width:
            outside.append((part, x))

    for sheet in pdf.pages:
        text.append(sheet.extract_text(visitor_text=visit))
    printed = "".join("".join(text).split())  # lines wrap anywhere on paper
    assert outside == []
    # every trial's id and the last column's error message made it onto paper
    for trial_id in main_sweep[1]["trial_id"]:
        assert trial_id in printed
    assert "".join(ERROR.split()) in printed


# --------------------------------------------------------------------------- the notes of each kind of sweep


def _running(root: Path) -> Path:
    sweep_dir, _ = scored_sweep(root, "running", signals={("attnmel", "none"): 1.0}, seeds=2)
    _write_meta(sweep_dir, {**SPEC, "name": "running", "grid": {"variants": ["attnmel"], "seeds": [0, 1, 2, 3]}})
    write_trial(sweep_dir, "ef56a_00090", 90, identity("attnmel", "none", 2), epoch_metrics(np.random.default_rng(0), 1),
                total_epochs=3)  # fmt: skip
    return sweep_dir


def _older(root: Path) -> Path:
    return lambda_sweep(root, "older", seeds=2)[0]


def _single_seed(root: Path) -> Path:
    return scored_sweep(root, "single", seeds=1)[0]


KINDS = {
    "running": (_running, True, ["Sweep running: 2 of 4 trials done (1 INCOMPLETE, 2 TERMINATED)",
                                 "reloads itself every 30 s", "Only 2 of 4 trials have ended",
                                 "1 trial(s) INCOMPLETE", "drawn when the sweep has ended"]),
    "older": (_older, False, ["No confidence intervals", "older version", "no attention scores",
                              "sweep's spec is not available"]),
    "single_seed": (_single_seed, False, ["3 setting(s) ran with a single seed"]),
}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_sweep_renders_with_its_notes(kind, tmp_path, browser):
    build, live, needles = KINDS[kind]
    sweep_dir = build(tmp_path)
    out = write_page(sweep_dir, read_spec=spec_from_dict, live=live, attention=False, n_resamples=1000)
    page = Offline(browser, out)
    try:
        text = page.page.inner_text("body")
        assert page.console_errors == [] and page.page_errors == [] and page.blocked == []
        for needle in needles:
            assert needle in text, (kind, needle)
        refresh = page.page.locator('meta[http-equiv="refresh"]')
        assert refresh.count() == (1 if live else 0)
    finally:
        page.close()


def test_errored_trials_are_visible(opened):
    page = opened()
    failed = page.page.locator("#trials-table tr.failed")
    assert failed.count() == 1 and failed.is_visible()
    assert "1 trial(s) errored" in page.page.inner_text("#trials")
    assert "Trials that did not finish (1 ERROR)" in page.page.inner_text("#methods")


def test_a_running_page_reloads_until_the_sweep_has_ended(tmp_path, browser):
    sweep_dir = _running(tmp_path)
    out = write_page(sweep_dir, read_spec=spec_from_dict, live=True, attention=False, n_resamples=1000, refresh_seconds=1)
    page = Offline(browser, out)
    try:
        with page.page.expect_event("load", timeout=30_000):  # it reloads by itself
            pass
        write_page(sweep_dir, read_spec=spec_from_dict, live=False, attention=False, n_resamples=1000)  # the sweep's last page
        with page.page.expect_event("load", timeout=30_000):
            pass
        assert "trials ended" in page.page.inner_text("header")
        assert page.page.locator('meta[http-equiv="refresh"]').count() == 0
        reloads: list[str] = []
        page.page.on("load", lambda _: reloads.append("load"))
        page.page.wait_for_timeout(2500)  # more than two of the old intervals
        assert reloads == [] and page.blocked == [] and page.console_errors == []
    finally:
        page.close()


# --------------------------------------------------------------------------- the command


def _attnmel(argv: list[str]) -> tuple[int, str, str]:
    import contextlib

    from orchestrator.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_report_html_writes_the_page_where_asked(tmp_path):
    sweep_dir = _single_seed(tmp_path)
    out = tmp_path / "shared" / "page.html"
    out.parent.mkdir()
    code, printed, _ = _attnmel(["report", "html", str(sweep_dir), "--out", str(out), "--no-attention",
                                 "--resamples", "1000"])  # fmt: skip
    assert code == 0 and printed.strip() == str(out)
    assert "Sweep ended: 3 of 3 trials done" in out.read_text() and not (sweep_dir / "report.html").exists()
    assert "Fig. 3" in out.read_text() and "not drawn (the page was written without it)" in out.read_text()


@pytest.mark.parametrize("args, needle", [
    (["--out", "{tmp}/page.txt"], "use a .html file name"),
    (["--out", "{tmp}/missing/page.html"], "does not exist"),
    (["--resamples", "10"], "--resamples must be at least 1000"),
])  # fmt: skip
def test_report_html_bad_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
    sweep_dir = _single_seed(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, printed, err = _attnmel(["report", "html", str(sweep_dir), *[a.format(tmp=tmp_path) for a in args]])
    assert code == 2 and printed == "" and len(err.splitlines()) == 1 and err.startswith("attnmel: error: ")
    assert needle in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_report_html_of_a_path_without_sweeps_is_one_line(tmp_path):
    code, _, err = _attnmel(["report", "html", str(tmp_path)])
    assert code == 2 and err.startswith("attnmel: error: no sweep found in") and len(err.splitlines()) == 1
