"""ISIC 2016/2017 data: official layouts, ROI maps, cached preprocessing, batched augmentation.

The public names below are imported lazily, so ``attnmel data check`` does not pay for
importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "DATASETS",
    "ROIS",
    "Sample",
    "load_splits",
    "check_layout",
    "roi_available",
    "load_roi",
    "SplitTensors",
    "DataBundle",
    "load_bundle",
    "train_batch",
    "eval_batch",
    "EpochSampler",
    "write_synthetic",
    "download_dataset",
]

_WHERE = {
    "DATASETS": "layout",
    "Sample": "layout",
    "load_splits": "layout",
    "check_layout": "layout",
    "ROIS": "roi",
    "roi_available": "roi",
    "load_roi": "roi",
    "SplitTensors": "bundle",
    "DataBundle": "bundle",
    "load_bundle": "bundle",
    "train_batch": "augment",
    "eval_batch": "augment",
    "EpochSampler": "sampler",
    "write_synthetic": "synth",
    "download_dataset": "download",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from attnmel.data.augment import eval_batch, train_batch
    from attnmel.data.bundle import DataBundle, SplitTensors, load_bundle
    from attnmel.data.download import download_dataset
    from attnmel.data.layout import DATASETS, Sample, check_layout, load_splits
    from attnmel.data.roi import ROIS, load_roi, roi_available
    from attnmel.data.sampler import EpochSampler
    from attnmel.data.synth import write_synthetic
