"""Model selection: which epoch of a run counts (section 3.1 of the paper).

"We always pick the best epoch according to the area under the ROC curve (AUC) on the
validation set": the first epoch with the highest validation AUC. Test metrics never select.
Kept free of torch so the result tables can use the same rule cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["best_epoch_row"]

Row = TypeVar("Row", bound=Mapping[str, Any])


def _val_auc(row: Mapping[str, Any]) -> float:
    try:
        return float(row.get("val_auc"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def best_epoch_row(rows: Iterable[Row]) -> Row | None:
    """The first row with the highest validation AUC (rows without one are skipped)."""
    best, best_auc = None, -math.inf
    for row in rows:
        auc = _val_auc(row)
        if not math.isnan(auc) and auc > best_auc:
            best, best_auc = row, auc
    return best
