"""Best-epoch selection: first epoch with the highest validation AUC, never test."""

from __future__ import annotations

import math

from attnmel.selection import best_epoch_row


def test_first_maximum_of_validation_auc_wins_whatever_test_says():
    rows = [
        {"epoch": 1, "val_auc": 0.70, "test_auc": 0.99},
        {"epoch": 2, "val_auc": 0.80, "test_auc": 0.50},
        {"epoch": 3, "val_auc": 0.80, "test_auc": 0.90},
    ]
    assert best_epoch_row(rows)["epoch"] == 2


def test_rows_without_validation_auc_are_skipped():
    rows = [{"epoch": 1, "val_auc": math.nan}, {"epoch": 2}, {"epoch": 3, "val_auc": 0.1}]
    assert best_epoch_row(rows)["epoch"] == 3
    assert best_epoch_row([{"epoch": 1, "val_auc": None}]) is None
    assert best_epoch_row([]) is None
