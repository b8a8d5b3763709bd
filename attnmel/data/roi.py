"""Reference maps for the attention regulariser (paper section 2.2).

* ``lesion``: the ISIC Part 1 segmentation mask (> 127 is lesion).
* ``bkg``: its inverse.
* ``dermo``: the union of the four ISIC 2017 Part 2 dermoscopic features. Each features
  JSON holds, per feature, one 0/1 value per superpixel; the superpixel PNG beside the
  image encodes each pixel's superpixel index as R + 256·G + 65536·B. An all-zero map is
  valid (many images show no feature).
* ``roi_dir``: a folder of ready-made binary maps, ``<image_id>.png`` or
  ``<image_id>_<anything>.png`` (nonzero = 1). When given it takes precedence over the
  dataset's own files and the maps are used as they are, whatever ``roi`` names; several
  files for one image (e.g. one per feature) are united.

All maps are (H, W) uint8 in {0, 1} at the size of the image.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from attnmel.data.layout import Sample, expected_paths
from attnmel.errors import UserError
from attnmel.config import ROIS

__all__ = [
    "ROIS",
    "DERMO_FEATURES",
    "roi_available",
    "roi_sources",
    "missing_roi_source",
    "load_roi",
    "lesion_map",
    "dermo_map",
    "superpixel_index",
]

DERMO_FEATURES = ("pigment_network", "negative_network", "streaks", "milia_like_cyst")


def _check_roi(roi: str) -> None:
    if roi not in ROIS:
        raise UserError(f"unknown roi {roi!r}; choose one of {', '.join(ROIS)}")


@lru_cache(maxsize=8)
def _roi_dir_index(roi_dir: str, mtime_ns: int) -> dict[str, tuple[str, ...]]:
    """Map every underscore-prefix of each PNG stem to its files.

    "ISIC_0000000_streaks.png" is found under "ISIC_0000000" (and "ISIC_0000000_streaks"),
    so one directory read serves thousands of look-ups. ``mtime_ns`` keys the cache.
    """
    index: dict[str, list[str]] = {}
    for name in sorted(os.listdir(roi_dir)):
        if not name.lower().endswith(".png"):
            continue
        parts = name[:-4].split("_")
        for i in range(1, len(parts) + 1):
            index.setdefault("_".join(parts[:i]), []).append(name)
    return {k: tuple(v) for k, v in index.items()}


def _ready_made(image_id: str, roi_dir: Path) -> list[Path]:
    roi_dir = Path(roi_dir)
    if not roi_dir.is_dir():
        raise UserError(f"{roi_dir}: roi_dir folder not found")
    index = _roi_dir_index(str(roi_dir), roi_dir.stat().st_mtime_ns)
    return [roi_dir / name for name in index.get(image_id, ())]


def roi_sources(sample: Sample, roi: str, roi_dir: Path | None = None) -> list[Path]:
    """Files the sample's ``roi`` map is built from (existing ones only; [] for "none")."""
    _check_roi(roi)
    if roi == "none":
        return []
    if roi_dir is not None:
        return _ready_made(sample.image_id, roi_dir)
    if roi in ("lesion", "bkg"):
        return [sample.lesion] if sample.lesion is not None else []
    return [p for p in (sample.superpixels, sample.features) if p is not None]


def missing_roi_source(sample: Sample, roi: str, roi_dir: Path | None = None) -> str | None:
    """The file a sample lacks for ``roi`` (as text, for the error message), or None."""
    _check_roi(roi)
    if roi == "none":
        return None
    if roi_dir is not None:
        if not _ready_made(sample.image_id, roi_dir):
            return str(Path(roi_dir) / f"{sample.image_id}.png")
        return None
    expected = expected_paths(sample)
    if roi in ("lesion", "bkg"):
        if sample.lesion is None:
            return str(expected.get("lesion", f"Part 1 lesion mask of {sample.image_id}"))
        return None
    if sample.superpixels is None:
        return str(expected.get("superpixels", f"Part 2 superpixel map of {sample.image_id}"))
    if sample.features is None:
        return str(expected.get("features", f"Part 2 features JSON of {sample.image_id} (ISIC 2017 only)"))
    return None


def roi_available(sample: Sample, roi: str, roi_dir: Path | None = None) -> bool:
    """Whether every file the sample's ``roi`` map needs is present ("none" is always)."""
    return missing_roi_source(sample, roi, roi_dir) is None


def _open_gray(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise UserError(f"{path}: unreadable map ({e})") from None


def lesion_map(mask_path: Path) -> np.ndarray:
    """(H, W) uint8 {0, 1} from a Part 1 mask (0/255; > 127 is lesion)."""
    return (_open_gray(mask_path) > 127).astype(np.uint8)


def superpixel_index(superpixels_path: Path) -> np.ndarray:
    """(H, W) int64 superpixel index decoded as R + 256·G + 65536·B."""
    try:
        with Image.open(superpixels_path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise UserError(f"{superpixels_path}: unreadable superpixel map ({e})") from None
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)


def dermo_map(superpixels_path: Path, features_path: Path) -> np.ndarray:
    """(H, W) uint8 {0, 1}: union of the four Part 2 features over the superpixels."""
    try:
        features = json.loads(Path(features_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{features_path}: unreadable features JSON ({e})") from None
    if not isinstance(features, dict):
        raise UserError(f"{features_path}: expected a JSON object with {', '.join(DERMO_FEATURES)}")
    index = superpixel_index(superpixels_path)
    n_superpixels = int(index.max()) + 1
    on = np.zeros(n_superpixels, dtype=bool)  # per superpixel: any feature present
    for name in DERMO_FEATURES:
        if name not in features:
            raise UserError(f"{features_path}: feature {name!r} missing")
        values = np.asarray(features[name], dtype=np.float64).reshape(-1)
        if len(values) < n_superpixels:
            raise UserError(
                f"{features_path}: {name} has {len(values)} values but {superpixels_path.name} "
                f"uses superpixel index {n_superpixels - 1}"
            )
        on |= values[:n_superpixels] > 0
    return on[index].astype(np.uint8)


def load_roi(sample: Sample, roi: str, roi_dir: Path | None = None) -> np.ndarray:
    """(H, W) uint8 {0, 1} reference map at the image's size.

    Raises ``UserError`` naming the missing or unreadable file.
    """
    _check_roi(roi)
    if roi == "none":
        raise ValueError("roi 'none' has no reference map")
    missing = missing_roi_source(sample, roi, roi_dir)
    if missing is not None:
        raise UserError(f"{missing}: needed for roi {roi!r} of {sample.image_id} but not found")
    if roi_dir is not None:
        maps = [_open_gray(p) > 0 for p in _ready_made(sample.image_id, roi_dir)]
        shapes = {m.shape for m in maps}
        if len(shapes) > 1:
            raise UserError(f"{roi_dir}: maps for {sample.image_id} differ in size: {sorted(shapes)}")
        return np.logical_or.reduce(maps).astype(np.uint8)
    if roi == "lesion":
        return lesion_map(sample.lesion)
    if roi == "bkg":
        return 1 - lesion_map(sample.lesion)
    return dermo_map(sample.superpixels, sample.features)
