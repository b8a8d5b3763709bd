"""DataBundle: everything ``fit()`` needs from the data, as CPU uint8 tensors.

``load_bundle`` validates first (the layout and its carvings, ROI availability for every
training sample, every external test set and that none of its images is in the training
data) so a bad input fails with one line naming the file before any decoding or training,
then reads the preprocessed tensors from the disk cache (building them once; memory-mapped),
and computes the training set's per-channel mean/std. ``info`` (the run's
``data_info.json``) records counts, every carving, the external sets and the cache keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from attnmel.data.datasets import DECLARATIONS, declaration
from attnmel.data.labels import canonical_id
from attnmel.data.layout import SPLITS, Sample, Scan, scan, stratified_subset
from attnmel.data.preprocess import channel_stats, default_cache_dir, load_images, load_rois
from attnmel.data.roi import missing_roi_source
from attnmel.errors import UserError

if TYPE_CHECKING:
    from attnmel.config import DataConfig, ExternalSet

__all__ = ["SplitTensors", "ExternalTensors", "DataBundle", "OFFICIAL_NORMALIZATION", "load_bundle", "select_samples",
           "external_samples"]  # fmt: skip


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
class ExternalTensors:
    """One external test set: another dataset's split, preprocessed like the training data."""

    name: str  # "isic2018_test": the tables' ext_<name>_auc / _ap
    dataset: str
    split: str  # train | val | test | all
    images: torch.Tensor  # (N, 3, S, S) uint8
    labels: torch.Tensor  # (N,) int64
    ids: list[str]

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
    info: dict  # counts, carvings, external sets, cache keys
    external: list[ExternalTensors] = field(default_factory=list)  # stay on the CPU until scored

    @property
    def mask_split(self) -> str | None:
        """The split Table 3 is scored on: test when it has lesion masks (as in the official
        ISIC downloads), else validation, else None."""
        return next((name for name in ("test", "val") if getattr(self, name).lesion is not None), None)


# Per-dataset normalisation constants of the official code (mean, std in [0, 1] units), for
# ``data.normalization: official`` (from the declarations); the default normalises by this
# run's training split.
OFFICIAL_NORMALIZATION = {name: d.normalization for name, d in DECLARATIONS.items() if d.normalization is not None}


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


def _raise_first(found: Scan, prefix: str = "") -> None:
    if found.problems:
        more = f" (and {len(found.problems) - 1} more; run `attnmel data check`)" if len(found.problems) > 1 else ""
        raise UserError(prefix + found.problems[0] + more)


def external_samples(ext: ExternalSet, training: dict[str, list[Sample]], training_dataset: str) -> list[Sample]:
    """The images of one external set, checked: the layout of the split it names (only that
    split's files are needed), and none of its images in ``training``, compared by id (an image
    scored as external that the model trained or was selected on would leak)."""
    found = scan(ext, ext.splits)  # only its split's files: a test set may be unpacked alone
    _raise_first(found, f"external set {ext.name!r}: ")
    samples = [s for name in ext.splits for s in found.splits[name]]
    if len({s.label for s in samples}) < 2:
        what = "is empty" if not samples else f"holds only {'melanoma' if samples[0].label else 'non-melanoma'} images"
        raise UserError(f"external set {ext.name!r}: {ext.root}: the {ext.split} split of {ext.dataset} {what} "
                        "(AUC and AP need both classes)")  # fmt: skip
    suffixes = (*declaration(ext.dataset).id_suffixes, *declaration(training_dataset).id_suffixes)
    ours = {canonical_id(s.image_id, suffixes) for part in training.values() for s in part}
    shared = [s.image_id for s in samples if canonical_id(s.image_id, suffixes) in ours]
    if shared:
        raise UserError(f"external set {ext.name!r}: {len(shared)} of its {len(samples)} images are in the training data "
                        f"too (first: {shared[0]}); an external test set must be disjoint from it")  # fmt: skip
    return samples


def _val_source(cfg: DataConfig, found: Scan) -> tuple[str, float | None]:
    carved = next((c for c in found.carved if c["split"] == "val"), None)
    if carved is None:
        return "official", None
    how = f"carved from training by {carved['grouped_by']}" if carved["grouped_by"] else "stratified from training"
    return how, carved["fraction"]


def load_bundle(cfg: DataConfig) -> DataBundle:
    """Load the configured dataset (and its external sets) as CPU tensors, cached on disk; see
    the module docstring."""
    root = Path(cfg.root).expanduser()
    roi_dir = Path(cfg.roi_dir).expanduser() if cfg.roi_dir else None
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()

    found_scan = scan(cfg)
    _raise_first(found_scan)
    found = found_scan.splits
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
    externals = [(ext, select_samples(external_samples(ext, found, cfg.dataset), cfg.max_eval, cfg.val_seed))
                 for ext in cfg.external or ()]  # fmt: skip

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
    external = []
    for ext, samples in externals:
        images, keys[f"external_{ext.name}_images"] = load_images(samples, **kw)
        labels = torch.tensor([s.label for s in samples], dtype=torch.int64)
        external.append(ExternalTensors(ext.name, ext.dataset, ext.split, images, labels, [s.image_id for s in samples]))

    if cfg.normalization == "official":
        mean, std = OFFICIAL_NORMALIZATION[cfg.dataset]
    else:
        mean, std = channel_stats(tensors["train"].images)
    val_source, val_fraction = _val_source(cfg, found_scan)
    info = {
        "dataset": cfg.dataset,
        "root": str(root.resolve()),
        "counts": {name: _counts(splits[name]) for name in SPLITS},
        "counts_before_limits": {name: _counts(found[name]) for name in SPLITS},
        "val_source": val_source,
        "val_fraction": val_fraction,
        "val_seed": cfg.val_seed,  # seeds every carving and the max_train / max_eval subsets
        "carved": found_scan.carved,  # split, from, fraction, seed, stratified_by, grouped_by, counts
        "grouped_by": found_scan.group_name,
        "duplicates_dropped": found_scan.duplicates_dropped,
        "masks": found_scan.masks,
        "max_train": cfg.max_train,
        "max_eval": cfg.max_eval,
        "roi": cfg.roi,
        "roi_dir": str(roi_dir.resolve()) if roi_dir else None,
        "image_size": cfg.image_size,
        "crop_fraction": cfg.crop_fraction,
        "normalization": cfg.normalization,
        "mean": list(mean),
        "std": list(std),
        "oversample": cfg.oversample,
        "melanoma_share_per_pass": _melanoma_share(splits["train"], cfg.oversample),
        "external": [
            {"name": e.name, "dataset": e.dataset, "split": e.split, "root": str(Path(ext.root).expanduser().resolve()),
             **_counts(samples)}
            for e, (ext, samples) in zip(external, externals)
        ],  # fmt: skip
        "cache_dir": os.fspath(cache_dir),
        "cache_keys": keys,
    }
    return DataBundle(train=tensors["train"], val=tensors["val"], test=tensors["test"], mean=mean, std=std, info=info,
                      external=external)  # fmt: skip


def _melanoma_share(train: list[Sample], oversample: int) -> float:
    """The share of melanoma among the images of one training pass (each melanoma ``oversample`` times)."""
    melanoma = sum(s.label for s in train)
    return melanoma * oversample / max(len(train) - melanoma + melanoma * oversample, 1)
