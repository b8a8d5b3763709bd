"""Preflight's GPU packing line: a spec whose resources.gpus puts more trials on a card than
their memory fits in 90 % of it gets one warning line naming the fraction that fits, before any
trial; one that fits gets none (no Ray: check_inputs and gpu_packing_line on the driver)."""

from __future__ import annotations

import json

import pytest

from attnmel import capacity
from attnmel.capacity import GIB, MeasuredTable, MeasuredTrial
from attnmel.data import load_splits
from orchestrator.sweep.preflight import check_inputs, gpu_packing_line, trial_shapes
from orchestrator.sweep.spec import load_spec


@pytest.fixture(autouse=True)
def _no_measured_table(monkeypatch):
    monkeypatch.delenv(capacity.MEASURED_ENV, raising=False)


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if "resources.gpus" in line]


def test_an_over_packing_fraction_gets_one_line_naming_the_fraction_that_fits(
        capsys, monkeypatch, make_spec):
    monkeypatch.setenv(capacity.CARD_MEMORY_ENV, "16")
    spec = load_spec(make_spec(resources={"cpus": 1, "gpus": 0.125}))
    check_inputs(spec, local=False)
    lines = _warnings(capsys)
    assert len(lines) == 1, lines
    # ~6 GiB each (estimated: the context, evaluation and cuDNN dominate at 32 px): 2 in 14.4 GiB
    assert lines[0].startswith("attnmel: warning: resources.gpus 0.125 packs 8 trials on a card")
    assert "estimated) fits 2 in 90 % of the card's 16 GiB ($ATTNMEL_GPU_MEMORY_GIB)" in lines[0]
    assert lines[0].endswith("use gpus: 0.5 or more")


def test_a_fraction_that_fits_gets_no_line(capsys, monkeypatch, make_spec):
    monkeypatch.setenv(capacity.CARD_MEMORY_ENV, "16")
    for gpus in (0.5, 1, 0):
        check_inputs(load_spec(make_spec(resources={"cpus": 1, "gpus": gpus})), local=False)
    assert _warnings(capsys) == []


def test_a_trial_larger_than_the_card_is_said_too(capsys, monkeypatch, make_spec):
    monkeypatch.setenv(capacity.CARD_MEMORY_ENV, "4")
    check_inputs(load_spec(make_spec(resources={"cpus": 1, "gpus": 1})), local=False)
    (line,) = _warnings(capsys)
    assert "one trial needs ~6." in line and "more than 90 % of the card's 4 GiB" in line


def test_the_largest_trial_of_the_grid_decides_and_a_measurement_replaces_the_estimate(
        tmp_path, monkeypatch, make_spec, sweep_data):
    spec = load_spec(make_spec(resources={"cpus": 1, "gpus": 0.25}))
    shapes = trial_shapes(spec, load_splits(spec.train.data))
    assert {(s.family, s.train_images, s.eval_images) for s in shapes} == {
        ("vgg16_gap", 16, 16), ("attnmel+roi", 16, 16)}
    card = (40 * GIB, "a test card")
    assert gpu_packing_line(spec, shapes, card, table=None) is None  # ~6 GiB: 6 fit in 36 GiB
    lesion = next(s for s in shapes if s.roi != "none")
    row = MeasuredTrial(lesion.family, lesion.batch_size, lesion.precision, lesion.crop_size, 32,
                        0, 11 * GIB, 12 * GIB)
    table = MeasuredTable("NVIDIA H200", 141 * GIB, GIB, (row,))
    line = gpu_packing_line(spec, shapes, card, table=table)  # 13 GiB + data: 2 fit in 36
    assert line.startswith(
        "resources.gpus 0.25 packs 4 trials on a card; their memory (~13.0 GiB each, measured on "
        "NVIDIA H200) fits 2 in 90 % of the card's 40 GiB (a test card)")
    assert line.endswith("use gpus: 0.5 or more")
    path = tmp_path / "capacity.json"  # the same through $ATTNMEL_CAPACITY
    path.write_text(json.dumps(table.to_dict()))
    monkeypatch.setenv(capacity.MEASURED_ENV, str(path))
    assert gpu_packing_line(spec, shapes, card) == line


def test_the_card_memory_comes_from_the_environment_first(monkeypatch):
    from attnmel.errors import UserError
    from orchestrator.sweep.preflight import card_memory

    monkeypatch.setenv(capacity.CARD_MEMORY_ENV, "40.5")
    assert card_memory() == (int(40.5 * GIB), "$ATTNMEL_GPU_MEMORY_GIB")
    monkeypatch.setenv(capacity.CARD_MEMORY_ENV, "lots")
    with pytest.raises(UserError, match="must be a positive number of GiB"):
        card_memory()
    monkeypatch.delenv(capacity.CARD_MEMORY_ENV)
    found, source = card_memory()  # this machine's GPU, or the documented default
    assert found > 0 and ("here" in source or source.startswith("no GPU seen here"))
