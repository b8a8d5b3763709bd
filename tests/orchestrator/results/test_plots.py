"""orchestrator.results.plots: λ sensitivity heat maps and per-epoch curves, written as real PNGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attnmel.errors import UserError
from orchestrator.results.plots import plot_curves, plot_sensitivity, save_figure
from orchestrator.results.build import build_tables

from _results_fixtures import lambda_sweep, paper_sweep

REPO = Path(__file__).resolve().parents[3]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lambda_tables(tmp_path_factory):
    sweep_dir, grid = lambda_sweep(tmp_path_factory.mktemp("results"), seeds=2)
    return sweep_dir, grid, *build_tables(sweep_dir)[:2]  # trials, epochs


def test_sensitivity_heat_maps(lambda_tables, tmp_path):
    _, grid, trials, _ = lambda_tables
    fig = plot_sensitivity(trials)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 2 * 2  # (lesion, dermo) × (validation, test)
    assert len(fig.axes) == 2 * len(panels)  # one colour bar each
    lesion_val = panels[0]
    assert "lesion" in lesion_val.get_title() and "validation" in lesion_val.get_title()
    assert [t.get_text() for t in lesion_val.get_xticklabels()] == ["0", "0.001", "0.01"]
    for ax in panels:
        assert len(ax.texts) == len(grid) ** 2
    # Cell (λ1=0.001, λ2=0.01) shows the mean of its seeds' validation AUC.
    cells = trials[(trials["roi"] == "lesion") & (trials["lambda1"] == 0.001) & (trials["lambda2"] == 0.01)]
    image = lesion_val.get_images()[0].get_array()
    assert image[1, 2] == pytest.approx(cells["val_auc"].mean())
    cell_text = next(t.get_text() for t in lesion_val.texts if t.get_position() == (2, 1))
    assert cell_text.startswith(f"{cells['val_auc'].mean():.3f}\n± {cells['val_auc'].std(ddof=1):.3f}")
    reference = trials[trials["roi"] == "none"]["val_auc"].mean()
    assert f"{reference:.3f}" in lesion_val.get_title()
    out = save_figure(fig, tmp_path / "sensitivity.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["sensitivity.png"]  # no temporary left


def test_curves_mean_over_seeds(tmp_path):
    sweep_dir = paper_sweep(tmp_path, seeds=2, epochs=3, crashed=False)
    trials, epochs, *_ = build_tables(sweep_dir)
    fig = plot_curves(trials, epochs)
    (ax,) = fig.axes
    lines = {line.get_label().split(" (n=")[0]: line for line in ax.get_lines()}
    assert len(lines) == 7 and "AttnMel-CNN-Lesion" in lines
    done = trials[trials["status"] == "TERMINATED"]
    ids = done[done["paper_name"] == "Mel-CNN"]["trial_id"]
    expected = epochs[epochs["trial_id"].isin(ids)].groupby("epoch")["val_auc"].mean()
    np.testing.assert_allclose(lines["Mel-CNN"].get_ydata(), expected.to_numpy())
    assert len(ax.collections) == 7  # a min–max band per model (two seeds each)
    out = save_figure(fig, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_curves_keep_the_paper_lambda_unless_asked(lambda_tables):
    _, grid, trials, epochs = lambda_tables
    assert len(plot_curves(trials, epochs).axes[0].get_lines()) == 3  # AttnMel-CNN, -Dermo, -Lesion
    everything = plot_curves(trials, epochs, all_lambdas=True).axes[0].get_lines()
    assert len(everything) == 2 * len(grid) ** 2 + 1


def test_nothing_to_plot_and_bad_outputs_are_user_errors(tmp_path):
    trials, epochs, *_ = build_tables(paper_sweep(tmp_path, seeds=1, epochs=2, crashed=False))
    with pytest.raises(UserError, match="regularised"):
        plot_sensitivity(trials[trials["roi"] == "none"])
    with pytest.raises(UserError, match="metric"):
        plot_curves(trials, epochs, metric="loss")
    fig = plot_curves(trials, epochs)
    with pytest.raises(UserError, match=r"\.png"):
        save_figure(fig, tmp_path / "curves.bmp")
    with pytest.raises(UserError, match="does not exist"):
        save_figure(fig, tmp_path / "no" / "curves.png")
    pd.testing.assert_frame_equal(trials, build_tables(tmp_path / "paper17")[0])  # inputs untouched


def test_cli_plot(lambda_tables, tmp_path):
    sweep_dir = lambda_tables[0]
    args = ["plot", "sensitivity", str(sweep_dir), "--out", str(tmp_path / "s.png"), "--metric", "ap"]
    # A fresh interpreter also shows that figures never import pyplot (global state, a backend).
    code = (f"import sys; from orchestrator.cli import main; code = main({args!r}); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; sys.exit(code)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC



def test_sensitivity_stars_the_cells_that_survive_bh(tmp_path):
    from orchestrator.results.comparisons import SENSITIVITY_FAMILY, sensitivity_family

    from _results_fixtures import scored_sweep

    sweep_dir, _ = scored_sweep(tmp_path, signals={("attnmel", "lesion"): 3.0, ("attnmel", "none"): 0.0},
                                lambdas=((0.001, 0.01), (0.01, 0.01), (0.01, 0.1)), seeds=3)  # fmt: skip
    trials, _, predictions, _ = build_tables(sweep_dir)
    family = sensitivity_family(trials, predictions, n_resamples=200)
    assert set(family["split"]) == {"val", "test"} and len(family) == 2 * 3
    assert family["family"].str.startswith(SENSITIVITY_FAMILY).all()
    # Mark exactly the cells with q < 0.05: change one q and its star moves with it.
    family.loc[(family["split"] == "test") & (family["lambda2"] == 0.1), "q_bh"] = 0.5
    fig = plot_sensitivity(trials, significance=family)
    panels = [ax for ax in fig.axes if ax.get_images()]
    stars = {ax.get_title().split("·")[2].split()[1]: sum(t.get_text().startswith("★") for t in ax.texts)
             for ax in panels}  # fmt: skip
    expected = {split: int(((family["split"] == split) & (family["q_bh"] < 0.05)).sum()) for split in ("val", "test")}
    assert stars == {"validation": expected["val"], "test": expected["test"]} and expected["val"] > expected["test"]
    assert "Benjamini–Hochberg q < 0.05" in fig.texts[0].get_text()
