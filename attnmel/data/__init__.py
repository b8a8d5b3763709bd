"""ISIC 2016/2017 data: official layouts, ROI maps, cached preprocessing, batched augmentation."""

from attnmel.data.augment import eval_batch, train_batch
from attnmel.data.bundle import DataBundle, SplitTensors, load_bundle
from attnmel.data.download import download_dataset
from attnmel.data.layout import DATASETS, Sample, check_layout, load_splits
from attnmel.data.roi import ROIS, load_roi, roi_available
from attnmel.data.sampler import EpochSampler
from attnmel.data.synth import write_synthetic

__all__ = [
    "DATASETS", "ROIS", "Sample", "load_splits", "check_layout", "roi_available", "load_roi", "SplitTensors",
    "DataBundle", "load_bundle", "train_batch", "eval_batch", "EpochSampler", "write_synthetic", "download_dataset",
]  # fmt: skip
