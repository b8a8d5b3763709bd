"""The result tables' columns come from what a run records (attnmel.record)."""

from __future__ import annotations

from attnmel.record import IDENTITY_FIELDS, LOSS_TERMS, MAP_NAMES, SPLIT_METRICS
from orchestrator.results.tables import SCHEMAS


def test_the_tables_columns_come_from_the_record():
    trials, epochs = set(SCHEMAS["trials"].names), set(SCHEMAS["epochs"].names)
    assert set(IDENTITY_FIELDS) <= trials and set(SPLIT_METRICS) <= trials
    assert set(LOSS_TERMS) | set(SPLIT_METRICS) <= epochs
    assert MAP_NAMES == ("pool3", "pool4", "cam")  # Table 3's order
