"""The page's methods paragraph says what ran: the passes per epoch the dataset declares (or the
spec sets) and what the intervals are of (the expected single-model metric)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _results_fixtures import scored_sweep
from attnmel.data.datasets import DECLARATIONS
from orchestrator.results.page import page_model
from orchestrator.sweep.spec import spec_from_dict, spec_to_dict


def _spec(dataset: str, **data) -> dict:
    return {"name": "methods", "dataset": {"name": dataset, "root": f"/data/{dataset}"},
            "train": {"model": {"weights": "none"}, "optim": {"epochs": 2}, "data": data},
            "grid": {"variants": ["attnmel", "vgg16_gap"], "seeds": [0, 1]}}  # fmt: skip


def _methods(root: Path, spec: dict, *, live: bool = True) -> str:
    sweep_dir, _ = scored_sweep(root, "methods", seeds=2)
    meta = {"name": "methods", "spec": spec_to_dict(spec_from_dict(spec)), "created": "2026-01-01T00:00:00+00:00"}
    (sweep_dir / "sweep.json").write_text(json.dumps(meta))
    return page_model(sweep_dir, read_spec=spec_from_dict, live=live, attention=False, n_resamples=200).methods


@pytest.mark.parametrize("dataset", ["isic2016", "isic2017", "isic2018", "isic2019", "isic2020"])
def test_passes_per_epoch_are_the_datasets_declared_ones(dataset, tmp_path):
    passes = DECLARATIONS[dataset].passes
    assert f"2 epochs of {passes} shuffled pass(es)" in _methods(tmp_path, _spec(dataset))


def test_passes_set_in_the_spec_win(tmp_path):
    assert "2 epochs of 3 shuffled pass(es)" in _methods(tmp_path, _spec("isic2018", passes=3))


def test_the_intervals_are_said_to_be_of_the_expected_single_model_metric(tmp_path):
    methods = _methods(tmp_path, _spec("isic2017"), live=False)
    assert "intervals of the expected single-model metric (the mean over seeds of each trial's metric)" in methods
    assert "seed-averaged melanoma probability" not in methods


def test_a_spec_the_reader_refuses_gives_no_methods_paragraph(tmp_path):
    sweep_dir, _ = scored_sweep(tmp_path, "methods", seeds=1)
    (sweep_dir / "sweep.json").write_text(json.dumps({"name": "methods", "spec": {"name": "x"}}))
    page = page_model(sweep_dir, read_spec=spec_from_dict, live=True, attention=False)
    assert page.methods.startswith("The sweep's spec is not available")
