"""The data layer: one declaration per dataset (``datasets/``), their layouts read into
samples, carved splits, ROI maps, the preprocessing cache, batched augmentation, sampling.

Names are imported on first use, so ``attnmel.data.datasets`` (which the training config
reads to validate ``data.dataset``) stays importable without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DATASETS", "ROIS", "Sample", "load_splits", "check_layout", "roi_available", "load_roi", "SplitTensors",
    "DataBundle", "load_bundle", "train_batch", "eval_batch", "EpochSampler", "write_synthetic", "download_dataset",
]  # fmt: skip

_HOME = {
    "DATASETS": "layout", "Sample": "layout", "load_splits": "layout", "check_layout": "layout",
    "ROIS": "roi", "roi_available": "roi", "load_roi": "roi",
    "SplitTensors": "bundle", "DataBundle": "bundle", "load_bundle": "bundle",
    "train_batch": "augment", "eval_batch": "augment", "EpochSampler": "sampler",
    "write_synthetic": "synth", "download_dataset": "download",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'attnmel.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"attnmel.data.{_HOME[name]}"), name)
