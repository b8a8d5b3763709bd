"""DataBundle: everything ``fit()`` needs from the data, as CPU uint8 tensors.

``load_bundle`` validates first (layout, ROI availability for every training sample) so a
bad input fails with one line naming the file before any decoding or training, then reads
the preprocessed tensors from the disk cache (building them once), and computes the
training set's per-channel mean/std.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from attnmel.data.layout import SPLITS, Sample, load_splits, stratified_subset
from attnmel.data.preprocess import channel_stats, default_cache_dir, load_images, load_rois
from attnmel.data.roi import missing_roi_source
from attnmel.errors import UserError

if TYPE_CHECKING:
    from attnmel.config import DataConfig

__all__ = ["SplitTensors", "DataBundle", "OFFICIAL_NORMALIZATION", "load_bundle", "select_samples"]


@dataclass
class SplitTensors:
    """One split as tensors (row i of each belongs to ``ids[i]``)."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    labels: torch.Tensor  # (N,) int64
    rois: torch.Tensor | None  # (N, 1, S, S) uint8 {0, 1}; train split only, when roi != "none"
    ids: list[str]
    lesion: torch.Tensor | None = None  # (N, 1, S, S) uint8 {0, 1}: evaluation splits whose every image has a mask

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class DataBundle:
    """The three splits, the normalisation statistics, and a record saved with the run."""

    train: SplitTensors
    val: SplitTensors
    test: SplitTensors
    mean: tuple[float, float, float]  # training-set per-channel mean, in [0, 1] units
    std: tuple[float, float, float]
    info: dict  # counts, val split seed/fraction, cache keys

    @property
    def mask_split(self) -> str | None:
        """The split Table 3 is scored on: test when it has lesion masks (as in the official
        ISIC downloads), else validation, else None."""
        return next((name for name in ("test", "val") if getattr(self, name).lesion is not None), None)


# Per-dataset normalisation constants of the official code (mean, std in [0, 1] units), for
# ``data.normalization: official``; the default normalises by this run's training split.
OFFICIAL_NORMALIZATION = {
    "isic2017": ((0.6820, 0.5312, 0.4736), (0.0840, 0.1140, 0.1282)),
    "isic2016": ((0.7012, 0.5517, 0.4875), (0.0942, 0.1331, 0.1521)),
}


def select_samples(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    """At most ``limit`` samples, label-stratified and seeded, in their original order."""
    if limit is None or limit >= len(samples):
        return samples
    if limit < 1:
        raise UserError(f"max_train / max_eval must be >= 1, got {limit}")
    keep = stratified_subset([s.label for s in samples], int(limit), seed)
    return [samples[i] for i in keep.tolist()]


def _check_rois(samples: list[Sample], roi: str, roi_dir: Path | None) -> None:
    missing = [(s, m) for s in samples if (m := missing_roi_source(s, roi, roi_dir)) is not None]
    if missing:
        sample, first = missing[0]
        others = f" ({len(missing) - 1} more training samples lack it too)" if len(missing) > 1 else ""
        raise UserError(f"{first}: roi {roi!r} needs it for training sample {sample.image_id}{others}")


def _counts(samples: list[Sample]) -> dict:
    melanoma = sum(s.label for s in samples)
    return {"images": len(samples), "melanoma": melanoma, "other": len(samples) - melanoma}


def load_bundle(cfg: DataConfig) -> DataBundle:
    """Load the configured dataset as CPU tensors (cached on disk); see module docstring."""
    root = Path(cfg.root).expanduser()
    roi_dir = Path(cfg.roi_dir).expanduser() if cfg.roi_dir else None
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()

    found = load_splits(cfg.dataset, root, val_fraction=cfg.val_fraction, val_seed=cfg.val_seed)
    splits = {
        "train": select_samples(found["train"], cfg.max_train, cfg.val_seed),
        "val": select_samples(found["val"], cfg.max_eval, cfg.val_seed),
        "test": select_samples(found["test"], cfg.max_eval, cfg.val_seed),
    }
    for name in SPLITS:
        if not splits[name]:
            raise UserError(f"{root}: the {name} split of {cfg.dataset} is empty")
    if cfg.roi != "none":
        _check_rois(splits["train"], cfg.roi, roi_dir)

    kw = {"image_size": cfg.image_size, "crop_fraction": cfg.crop_fraction, "cache_dir": cache_dir}
    tensors: dict[str, SplitTensors] = {}
    keys: dict[str, str] = {}
    for name in SPLITS:
        samples = splits[name]
        images, keys[f"{name}_images"] = load_images(samples, **kw)
        rois = None
        if name == "train" and cfg.roi != "none":
            rois, keys["train_rois"] = load_rois(samples, cfg.roi, roi_dir=roi_dir, **kw)
        lesion = None
        if name != "train" and samples and all(s.lesion is not None for s in samples):
            lesion, keys[f"{name}_lesion"] = load_rois(samples, "lesion", **kw)
        labels = torch.tensor([s.label for s in samples], dtype=torch.int64)
        tensors[name] = SplitTensors(images, labels, rois, [s.image_id for s in samples], lesion)

    if cfg.normalization == "official":
        mean, std = OFFICIAL_NORMALIZATION[cfg.dataset]
    else:
        mean, std = channel_stats(tensors["train"].images)
    info = {
        "dataset": cfg.dataset,
        "root": str(root.resolve()),
        "counts": {name: _counts(splits[name]) for name in SPLITS},
        "counts_before_limits": {name: _counts(found[name]) for name in SPLITS},
        "val_source": "official" if cfg.dataset == "isic2017" else "stratified from training",
        "val_fraction": cfg.val_fraction if cfg.dataset == "isic2016" else None,
        "val_seed": cfg.val_seed,  # also seeds the max_train / max_eval subsets
        "max_train": cfg.max_train,
        "max_eval": cfg.max_eval,
        "roi": cfg.roi,
        "roi_dir": str(roi_dir.resolve()) if roi_dir else None,
        "image_size": cfg.image_size,
        "crop_fraction": cfg.crop_fraction,
        "normalization": cfg.normalization,
        "mean": list(mean),
        "std": list(std),
        "cache_dir": os.fspath(cache_dir),
        "cache_keys": keys,
    }
    return DataBundle(train=tensors["train"], val=tensors["val"], test=tensors["test"], mean=mean, std=std, info=info)
