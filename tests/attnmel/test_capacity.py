"""attnmel.capacity: the packing rule (90 % of the card, resources.gpus 1/n as Ray counts it),
the memory estimate and the measured table that replaces it."""

from __future__ import annotations

import json

import pytest

from attnmel import capacity
from attnmel.capacity import GIB, MeasuredTable, MeasuredTrial, TrialShape
from attnmel.errors import UserError


def test_trials_that_fit_keeps_ten_percent_of_the_card():
    card = 100 * GIB
    assert capacity.trials_that_fit(18 * GIB, card) == 5  # 90 GiB exactly: fits
    assert capacity.trials_that_fit(18 * GIB + 1, card) == 4  # one byte more: not five
    assert capacity.trials_that_fit(90 * GIB, card) == 1
    assert capacity.trials_that_fit(90 * GIB + 1, card) == 0  # not even one
    assert capacity.trials_that_fit(10 * GIB, card, headroom=0.0) == 10
    # float edges: 0.9 × 80 GiB = 72 GiB, split into 9 and 7 parts
    assert capacity.trials_that_fit(72 * GIB / 9, 80 * GIB) == 9
    assert capacity.trials_that_fit(72 * GIB / 7 * (1 + 1e-12), 80 * GIB) == 6
    with pytest.raises(ValueError):
        capacity.trials_that_fit(0, card)


@pytest.mark.parametrize("n", range(1, 33))
def test_the_fraction_for_n_packs_exactly_n(n):
    fraction = capacity.fraction_for(n)
    assert fraction <= 1 / n and capacity.trials_per_card(fraction) == n


def test_trials_per_card_follows_rays_fractions():
    assert capacity.trials_per_card(0) == 0 and capacity.trials_per_card(2) == 1
    assert capacity.trials_per_card(1) == 1 and capacity.trials_per_card(0.5) == 2
    assert capacity.trials_per_card(0.3) == 3 and capacity.trials_per_card(0.25) == 4
    assert capacity.trials_per_card(0.125) == 8 and capacity.trials_per_card(0.3334) == 2
    assert [capacity.fraction_for(n) for n in (1, 2, 3, 5, 7)] == [1.0, 0.5, 0.3333, 0.2, 0.1428]
    with pytest.raises(ValueError):
        capacity.fraction_for(0)


def test_the_estimate_reproduces_its_anchor_trial():
    """AttnMel-CNN-Lesion on ISIC 2017 at batch 32 is the measured trial: its reserved memory
    plus the context, and a copy of the weights (the best epoch's, which the step peaks lack)."""
    anchor = TrialShape("attnmel", "lesion", 32, 2000, 750, eval_masks=750)
    for weights in (0, 60_000_000):
        m = capacity.estimate_trial_memory(anchor, weights)
        expected = (capacity.TRIAL_RESERVED_GIB + capacity.CONTEXT_GIB) * GIB + weights
        assert m.total == pytest.approx(expected, rel=1e-6) and m.source == "estimated"


def test_the_estimate_grows_with_batch_data_and_fp32():
    base = TrialShape("attnmel", "none", 32, 20265, 13304)
    est = capacity.estimate_trial_memory
    assert est(base).data == 33569 * (3 * 256**2 + 8)  # ISIC 2019 at 256²: 6.6 GB
    assert est(base).step < est(TrialShape("attnmel", "none", 64, 20265, 13304)).step
    lesion = TrialShape("attnmel", "lesion", 32, 20265, 13304)
    assert est(lesion).data - est(base).data == 20265 * 256**2  # the training ROI maps
    fp32 = TrialShape("attnmel", "none", 32, 20265, 13304, bf16=False)
    assert est(fp32).total > est(base).total
    # the weights' four copies do not scale: half the batch keeps them, halves the rest
    half = est(TrialShape("attnmel", "none", 16, 20265, 13304), 100_000_000).step
    full = est(base, 100_000_000).step
    assert half == pytest.approx(400_000_000 + (full - 400_000_000) / 2, rel=1e-6)
    # the README's planning number: ~15 GB per AttnMel-CNN trial on all of ISIC 2019, four on 80 GiB
    assert 14 * GIB < est(base).total < 16 * GIB
    assert capacity.trials_that_fit(est(base).total, 80 * GIB) == 4


def _table(reserved: int, data: int = 10 * GIB) -> MeasuredTable:
    row = MeasuredTrial("attnmel+roi", 32, "bf16", 224, 2750, data, reserved - GIB, reserved)
    return MeasuredTable("NVIDIA H200", 140 * GIB, GIB // 2, (row,))


def test_a_measured_row_replaces_the_estimate_for_its_case_only():
    table = _table(reserved=12 * GIB)
    shape = TrialShape("attnmel", "dermo", 32, 2000, 750, 750)  # any ROI: the same maps
    m = table.trial_memory(shape)
    assert m.source == "measured on NVIDIA H200"
    # the context + its own data + what the measured trial held beyond its data
    assert m.total == GIB // 2 + capacity.data_bytes(shape) + 2 * GIB
    assert table.trial_memory(TrialShape("attnmel", "none", 32, 2000, 750)) is None
    assert table.trial_memory(TrialShape("attnmel", "dermo", 64, 2000, 750)) is None
    assert table.trial_memory(TrialShape("attnmel", "dermo", 32, 2000, 750, bf16=False)) is None


def test_load_measured_reads_the_file_named_by_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "capacity.json"
    path.write_text(json.dumps(_table(reserved=12 * GIB).to_dict()))
    monkeypatch.setenv(capacity.MEASURED_ENV, str(path))
    loaded = capacity.load_measured()
    assert loaded.card == "NVIDIA H200" and loaded.rows[0].max_reserved_bytes == 12 * GIB
    monkeypatch.delenv(capacity.MEASURED_ENV)
    assert capacity.load_measured() is None  # nothing packaged until a card measured it


@pytest.mark.parametrize(("text", "needle"), [
    (None, "does not exist"),
    ("{not json", "cannot read it"),
    ('{"schema": "other"}', "not a capacity table"),
    (json.dumps({"schema": capacity.SCHEMA, "card": "x", "card_memory_bytes": 1,
                 "rows": [{"a": 1}]}), "damaged capacity table"),
])
def test_a_bad_capacity_table_is_one_line(tmp_path, text, needle):
    path = tmp_path / "capacity.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UserError, match=needle):
        capacity.load_measured(path)
