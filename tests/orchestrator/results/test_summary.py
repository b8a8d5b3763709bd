"""What a sweep prints and draws at its end (orchestrator.results.summary), on fake finished sweeps."""

from __future__ import annotations

from PIL import Image

from orchestrator.results.build import build_tables
from orchestrator.results.stats import DEFAULT_RESAMPLES
from orchestrator.results.summary import summary_report, write_figures

from _results_fixtures import lambda_sweep, scored_sweep


def test_summary_has_the_settings_intervals_when_there_are_predictions(tmp_path):
    sweep_dir, _ = scored_sweep(tmp_path)
    text, problem = summary_report(build_tables(sweep_dir))  # what the sweep prints: report show's pipeline
    assert "AUC 95% CI" in text and "95% CI of the expected single-model metric" in text
    assert f"stratified image bootstrap, {DEFAULT_RESAMPLES} resamples" in text and "ensemble" not in text
    assert problem is None
    text, _ = summary_report(build_tables(sweep_dir), ensemble=True)
    assert "seed ensembles (not the settings' numbers)" in text and "(ensemble of 2 seeds)" in text
    old, _ = lambda_sweep(tmp_path)  # trials of an older version: no predictions, no intervals
    text, problem = summary_report(build_tables(old))
    assert "[95% CI]" not in text and "need per-image predictions" in text and problem is None


def test_figures_curves_always_sensitivity_for_a_lambda_grid(tmp_path, capsys):
    grid_dir, _ = lambda_sweep(tmp_path)
    write_figures(grid_dir, build_tables(grid_dir))
    single_dir, _ = scored_sweep(tmp_path)  # one λ setting: nothing to map
    write_figures(single_dir, build_tables(single_dir))
    printed = capsys.readouterr().out
    assert printed.count("figure: ") == 3
    for path in (grid_dir / "curves.png", grid_dir / "sensitivity.png", single_dir / "curves.png"):
        with Image.open(path) as image:
            assert image.width > 200 and image.height > 200
    assert not (single_dir / "sensitivity.png").exists()
