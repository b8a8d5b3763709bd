"""Official ISIC 2016 / 2017 challenge layouts → per-split lists of samples.

The folder and file names are the ones the challenge archives unpack to, so a researcher
points ``root`` at the unpacked downloads and nothing is renamed. Images are chosen by the
ids in each split's ground-truth CSV, never by globbing: the image folders also hold
superpixel PNGs and metadata CSVs.

ISIC 2016 has no validation split; one is carved from training, stratified by label, with
a fixed seed and fraction (both recorded by the caller, see ``bundle.load_bundle``).
"""

from __future__ import annotations

import csv
import functools
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from attnmel.errors import UserError
from attnmel.config import DATASETS

__all__ = [
    "DATASETS",
    "SPLITS",
    "Sample",
    "SplitLayout",
    "LAYOUTS",
    "load_splits",
    "check_layout",
    "file_problems",
    "stratified_subset",
    "expected_paths",
    "find_mask",
]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One labelled image and the files its reference maps come from."""

    image_id: str  # "ISIC_0000000"
    label: int  # melanoma = 1, else 0
    image: Path
    lesion: Path | None  # Part 1 mask if present
    superpixels: Path | None  # ISIC 2017 Part 2 superpixel PNG if present
    features: Path | None  # ISIC 2017 Part 2 features JSON if present


@dataclass(frozen=True)
class SplitLayout:
    """Official names of one split's files, relative to the dataset root."""

    images: str  # image folder
    labels: str  # Part 3 ground-truth CSV
    masks: str  # Part 1 mask folder
    mask_suffix: str  # "_segmentation.png" (2017) / "_Segmentation.png" (2016)
    features: str | None  # Part 2 folder (ISIC 2017 only)


def _layout_2017(official: str) -> SplitLayout:
    prefix = f"ISIC-2017_{official}"
    return SplitLayout(
        images=f"{prefix}_Data",
        labels=f"{prefix}_Part3_GroundTruth.csv",
        masks=f"{prefix}_Part1_GroundTruth",
        mask_suffix="_segmentation.png",
        features=f"{prefix}_Part2_GroundTruth",
    )


def _layout_2016(official: str) -> SplitLayout:
    return SplitLayout(
        images=f"ISBI2016_ISIC_Part3_{official}_Data",
        labels=f"ISBI2016_ISIC_Part3_{official}_GroundTruth.csv",
        masks=f"ISBI2016_ISIC_Part1_{official}_GroundTruth",
        mask_suffix="_Segmentation.png",
        features=None,
    )


# Splits that exist on disk; ISIC 2016 "val" is carved from "train" (see load_splits).
LAYOUTS: dict[str, dict[str, SplitLayout]] = {
    "isic2017": {
        "train": _layout_2017("Training"),
        "val": _layout_2017("Validation"),
        "test": _layout_2017("Test_v2"),
    },
    "isic2016": {
        "train": _layout_2016("Training"),
        "test": _layout_2016("Test"),
    },
}

FEATURES_SUFFIX = "_features.json"
SUPERPIXELS_SUFFIX = "_superpixels.png"
# The official images are JPEG; other extensions are accepted for re-encoded copies.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

# ISIC 2016 Part 3 uses words in the training CSV and numbers in the test CSV.
_LABEL_WORDS = {"benign": 0, "malignant": 1}
_LABEL_NUMBERS = {"0": 0, "0.0": 0, "1": 1, "1.0": 1}


def expected_paths(sample: Sample) -> dict[str, Path]:
    """Where the official layout puts a sample's ROI sources (for messages naming a missing file)."""
    folder = sample.image.parent
    for splits in LAYOUTS.values():
        for lay in splits.values():
            if lay.images == folder.name:
                out = {
                    "lesion": folder.parent / lay.masks / (sample.image_id + lay.mask_suffix),
                    "superpixels": folder / (sample.image_id + SUPERPIXELS_SUFFIX),
                }
                if lay.features:
                    out["features"] = folder.parent / lay.features / (sample.image_id + FEATURES_SUFFIX)
                return out
    return {}


MASK_SUFFIXES = tuple(dict.fromkeys(lay.mask_suffix for splits in LAYOUTS.values() for lay in splits.values()))


def find_mask(masks: Path, image: Path) -> Path | None:
    """``image``'s lesion mask in a folder of masks (any official layout's name, or ``<id>.png``), or None."""
    for name in [image.stem + s for s in MASK_SUFFIXES] + [image.stem + ".png"]:
        candidate = masks / name
        if candidate.is_file() and candidate.resolve() != image.resolve():
            return candidate
    return None


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def _parse_label(dataset: str, value: str) -> int | None:
    value = value.strip()
    if dataset == "isic2016" and value.lower() in _LABEL_WORDS:
        return _LABEL_WORDS[value.lower()]
    return _LABEL_NUMBERS.get(value)


def _read_labels(dataset: str, csv_path: Path, problems: list[str]) -> list[tuple[str, int]]:
    """(image_id, label) rows in file order; bad rows become problems and are dropped."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        problems.append(f"{csv_path}: cannot read ({e})")
        return []
    if dataset == "isic2017":
        header = [c.strip() for c in rows[0]] if rows else []
        if "image_id" not in header or "melanoma" not in header:
            problems.append(f"{csv_path}: header must contain 'image_id' and 'melanoma', got {header}")
            return []
        id_col, label_col, first = header.index("image_id"), header.index("melanoma"), 1
    else:
        # No header in the official 2016 files; tolerate one added by a re-hosted copy.
        id_col, label_col = 0, 1
        first = 1 if rows and rows[0][0].strip().lower() in ("image_id", "isic_id", "name") else 0
    out: list[tuple[str, int]] = []
    seen: Counter[str] = Counter()
    for line_no, row in enumerate(rows[first:], start=first + 1):
        if len(row) <= max(id_col, label_col):
            problems.append(f"{csv_path}:{line_no}: expected at least {max(id_col, label_col) + 1} columns, got {row}")
            continue
        image_id, raw = row[id_col].strip(), row[label_col].strip()
        label = _parse_label(dataset, raw)
        if label is None:
            allowed = "0/1 (or benign/malignant)" if dataset == "isic2016" else "0/1"
            problems.append(f"{csv_path}:{line_no}: label {raw!r} for {image_id} is not {allowed}")
            continue
        seen[image_id] += 1
        if seen[image_id] == 2:
            problems.append(f"{csv_path}: duplicate image id {image_id}")
        if seen[image_id] > 1:
            continue
        out.append((image_id, label))
    if not rows[first:]:
        problems.append(f"{csv_path}: no rows")
    return out


def _find_image(folder: Path, image_id: str, listing: set[str] | None) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        name = image_id + ext
        if (name in listing) if listing is not None else (folder / name).is_file():
            return folder / name
    return None


def _listing(folder: Path) -> set[str] | None:
    """File names in a folder (one directory read instead of thousands of stat calls)."""
    try:
        return set(os.listdir(folder))
    except OSError:
        return None


def _scan_split(dataset: str, root: Path, lay: SplitLayout, problems: list[str]) -> list[Sample]:
    images_dir, csv_path = root / lay.images, root / lay.labels
    missing = False
    if not images_dir.is_dir():
        problems.append(f"{images_dir}: image folder not found")
        missing = True
    if not csv_path.is_file():
        problems.append(f"{csv_path}: ground-truth CSV not found")
        missing = True
    if missing:
        return []
    rows = _read_labels(dataset, csv_path, problems)
    images = _listing(images_dir) or set()
    masks_dir = root / lay.masks
    masks = _listing(masks_dir) or set()
    feats_dir = root / lay.features if lay.features else None
    feats = _listing(feats_dir) if feats_dir else None
    samples = []
    for image_id, label in rows:
        image = _find_image(images_dir, image_id, images)
        if image is None:
            problems.append(f"{images_dir / (image_id + '.jpg')}: image listed in {csv_path.name} not found")
            continue
        mask_name = image_id + lay.mask_suffix
        sp_name = image_id + SUPERPIXELS_SUFFIX
        ft_name = image_id + FEATURES_SUFFIX
        samples.append(
            Sample(
                image_id=image_id,
                label=label,
                image=image,
                lesion=masks_dir / mask_name if mask_name in masks else None,
                superpixels=images_dir / sp_name if sp_name in images else None,
                features=feats_dir / ft_name if feats and ft_name in feats else None,
            )
        )
    return samples


def stratified_subset(labels: list[int], fraction_or_count: float | int, seed: int) -> np.ndarray:
    """Sorted indices of a label-stratified random subset.

    ``fraction_or_count``: a float is a fraction of ``len(labels)``, an int a total count.
    Classes keep their shares (largest-remainder rounding, so the total is exact), and every
    class with two or more members gets at least one place when the subset has room for
    all classes, so both classes stay present even in a tiny subset.
    """
    labels_a = np.asarray(labels)
    n = len(labels_a)
    total = round(fraction_or_count * n) if isinstance(fraction_or_count, float) else int(fraction_or_count)
    total = max(0, min(n, total))
    classes = sorted(set(labels_a.tolist()))
    members = {c: np.flatnonzero(labels_a == c) for c in classes}
    exact = {c: total * len(members[c]) / n for c in classes} if n else {}
    shares = {c: int(exact[c]) for c in classes}
    by_remainder = sorted(classes, key=lambda c: (-(exact[c] - shares[c]), c))
    for c in by_remainder[: total - sum(shares.values())]:
        shares[c] += 1
    if len(classes) <= total < n:
        for c in classes:
            if shares[c] == 0 and len(members[c]) >= 2:
                donor = max(classes, key=lambda d: shares[d])
                shares[donor] -= 1
                shares[c] = 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(members[c])[: shares[c]] for c in classes]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _scan(
    dataset: str, root: Path, val_fraction: float, val_seed: int
) -> tuple[dict[str, list[Sample]], list[str]]:
    _check_dataset(dataset)
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}")
    root = Path(root).expanduser()
    problems: list[str] = []
    if not root.is_dir():
        return {s: [] for s in SPLITS}, [f"{root}: dataset root folder not found"]
    splits = {name: _scan_split(dataset, root, lay, problems) for name, lay in LAYOUTS[dataset].items()}
    if "val" not in splits:
        train = splits["train"]
        val_idx = set(stratified_subset([s.label for s in train], float(val_fraction), val_seed).tolist())
        splits["val"] = [s for i, s in enumerate(train) if i in val_idx]
        splits["train"] = [s for i, s in enumerate(train) if i not in val_idx]
    # The same image in two splits would leak test data into training.
    owner: dict[str, str] = {}
    for name in SPLITS:
        for s in splits[name]:
            if s.image_id in owner:
                problems.append(f"image id {s.image_id} appears in both {owner[s.image_id]} and {name}")
            owner[s.image_id] = name
    return {name: splits[name] for name in SPLITS}, problems


def load_splits(
    dataset: str, root: Path, *, val_fraction: float = 0.2, val_seed: int = 0
) -> dict[str, list[Sample]]:
    """Samples per split ("train", "val", "test"), read from the official layout.

    Cheap: reads the CSVs and folder listings, decodes no image. Raises ``UserError`` with
    the first problem found (``check_layout`` lists them all).
    """
    splits, problems = _scan(dataset, Path(root), val_fraction, val_seed)
    if problems:
        more = f" (and {len(problems) - 1} more; run `attnmel data check`)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)
    return splits


_IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


def _sample_problems(sample: Sample, decode: bool) -> list[str]:
    """Open the image and its masks and compare their sizes. ``decode`` decodes every byte,
    so a truncated file fails here rather than in training; otherwise only headers are read.
    LOAD_TRUNCATED_IMAGES stays at Pillow's default (off)."""
    what = "unreadable or truncated" if decode else "unreadable"
    try:
        with Image.open(sample.image) as im:
            if decode:
                im.load()
            size = im.size
    except _IMAGE_ERRORS as e:
        return [f"{sample.image}: {what} image ({e})"]
    out = []
    for path in (sample.lesion, sample.superpixels):
        if path is None:
            continue
        try:
            with Image.open(path) as m:
                if decode:
                    m.load()
                if m.size != size:
                    out.append(f"{path}: size {m.size[0]}x{m.size[1]} differs from its image {size[0]}x{size[1]}")
        except _IMAGE_ERRORS as e:
            out.append(f"{path}: {what} ({e})")
    return out


def file_problems(samples: list[Sample], *, decode: bool = True) -> list[str]:
    """One line per unreadable, truncated (``decode``) or mis-sized image or mask, in order."""
    # Pillow releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        return [line for found in pool.map(functools.partial(_sample_problems, decode=decode), samples) for line in found]


def _split_report(samples: list[Sample]) -> dict:
    melanoma = sum(s.label for s in samples)
    return {
        "images": len(samples),
        "melanoma": melanoma,
        "other": len(samples) - melanoma,
        "roi": {
            "lesion": sum(s.lesion is not None for s in samples),
            "dermo": sum(s.superpixels is not None and s.features is not None for s in samples),
        },
    }


def check_layout(
    dataset: str,
    root: Path,
    *,
    val_fraction: float = 0.2,
    val_seed: int = 0,
    decode: bool = True,
) -> tuple[dict, list[str]]:
    """Validate a dataset folder; return ``(report, problems)``.

    ``report`` is the ``attnmel data check --json`` object: per split the number of images,
    melanoma and other, and how many samples have each ROI source. ``problems`` holds one
    line per problem and is empty when the dataset is usable. ``decode=True`` decodes every
    image and mask (finds truncated files); otherwise only headers are read.
    """
    splits, problems = _scan(dataset, Path(root), val_fraction, val_seed)
    problems += file_problems([s for name in SPLITS for s in splits[name]], decode=decode)
    report = {"dataset": dataset, "splits": {name: _split_report(splits[name]) for name in SPLITS}}
    if dataset == "isic2016":
        report["val_split"] = {"source": "train", "fraction": val_fraction, "seed": val_seed}
    return report, problems
