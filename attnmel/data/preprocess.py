"""Deterministic preprocessing, done once per dataset and cached on disk.

Paper (section 3.1): centre square crop of side 0.8·min(H, W), then resize to 256×256.
Images are resampled bilinearly with antialiasing (Pillow's BILINEAR widens its filter when
downscaling). Reference maps go through the *same* resampling (same crop box, same filter)
and are then thresholded at 0.5: this keeps their boundaries exactly where the image's
boundaries land, and it is the area-weighted majority vote, whereas nearest-neighbour would
pick one source pixel per output pixel and alias ragged borders at the 10–25× reductions
of full-size ISIC images.

Results are uint8 arrays in ``.npy`` files under the cache folder (``$ATTNMEL_CACHE`` or
``~/.cache/attnmel``), with the image ids beside them (``.ids.json``), keyed by a hash of the
source files (path, size, mtime) and the parameters, so editing a file or a parameter
rebuilds them. Images and ROI maps are cached separately: runs that differ only in the ROI
share the decoded images. A cache is built straight into its file (bounded memory, with a
progress bar on a terminal: ISIC 2020 at 256² is 6.5 GB), under a temporary name renamed at
the end, so concurrent trials on one node never read half a file; it is read back through a
memory map (copy-on-write, never written), so N trials on one node share one copy of it in
the page cache instead of each holding their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from attnmel.atomic import atomic_output, atomic_write
from attnmel.data.layout import Sample
from attnmel.data.roi import load_roi, roi_sources
from attnmel.errors import UserError

__all__ = [
    "PREPROCESS_VERSION",
    "default_cache_dir",
    "center_crop_box",
    "preprocess_image",
    "preprocess_map",
    "images_cache_key",
    "rois_cache_key",
    "load_images",
    "load_rois",
    "cache_paths",
    "channel_stats",
]

log = logging.getLogger(__name__)

# Part of every cache key: bump it when the pixel pipeline changes.
PREPROCESS_VERSION = 2
_STATS_BLOCK = 1024  # images per block of channel_stats
_BILINEAR = Image.Resampling.BILINEAR


def default_cache_dir() -> Path:
    """``$ATTNMEL_CACHE`` if set, else ``~/.cache/attnmel``."""
    return Path(os.environ.get("ATTNMEL_CACHE") or "~/.cache/attnmel").expanduser()


def center_crop_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred square of side ``fraction``·min(H, W).

    Whole pixels, rounded like torchvision's ``CenterCrop``; the crop is cut out before
    resizing, so the resampling filter never reaches pixels outside the square.
    """
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"crop_fraction must be in (0, 1], got {fraction}")
    side = max(1, int(round(fraction * min(width, height))))
    left, top = int(round((width - side) / 2)), int(round((height - side) / 2))
    return (left, top, left + side, top + side)


def preprocess_image(path: Path, size: int = 256, fraction: float = 0.8) -> np.ndarray:
    """(3, size, size) uint8: decode, centre crop, bilinear antialiased resize."""
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise UserError(f"{path}: unreadable or truncated image ({e})") from None
    out = rgb.crop(center_crop_box(*rgb.size, fraction)).resize((size, size), _BILINEAR)
    return np.asarray(out).transpose(2, 0, 1)


def preprocess_map(roi: np.ndarray, size: int = 256, fraction: float = 0.8) -> np.ndarray:
    """(size, size) uint8 {0, 1}: a (H, W) {0, 1} map through the image's geometry, > 0.5."""
    h, w = roi.shape
    square = Image.fromarray((roi > 0).astype(np.uint8) * 255).crop(center_crop_box(w, h, fraction))
    resized = square.resize((size, size), _BILINEAR)
    return (np.asarray(resized) >= 128).astype(np.uint8)  # 128/255 is the first value ≥ 0.5


def _fingerprint(path: Path) -> list:
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def images_cache_key(samples: Sequence[Sample], image_size: int, crop_fraction: float) -> str:
    """Hash of the image files (path, size, mtime) and the preprocessing parameters."""
    files = [_fingerprint(s.image) for s in samples]
    return _hash(["images", PREPROCESS_VERSION, image_size, crop_fraction, files])


def rois_cache_key(
    samples: Sequence[Sample], roi: str, roi_dir: Path | None, image_size: int, crop_fraction: float
) -> str:
    """Hash of each sample's ROI source files, its image (for the size) and the parameters."""
    files = [
        [_fingerprint(s.image)] + [_fingerprint(p) for p in roi_sources(s, roi, roi_dir)] for s in samples
    ]
    where = str(Path(roi_dir).resolve()) if roi_dir is not None else None
    return _hash(["rois", PREPROCESS_VERSION, roi, where, image_size, crop_fraction, files])


def cache_paths(cache_dir: Path | None, kind: str, key: str) -> tuple[Path, Path]:
    """The array file and the ids file of one cache entry."""
    base = Path(cache_dir or default_cache_dir()).expanduser() / f"{kind}-{key}"
    return base.with_suffix(".npy"), base.with_suffix(".ids.json")


def _read_cache(path: Path, ids_path: Path, shape: tuple[int, ...], ids: list[str]) -> torch.Tensor | None:
    if not (path.is_file() and ids_path.is_file()):
        return None
    try:
        if json.loads(ids_path.read_text()) != ids:
            return None
        array = np.load(path, mmap_mode="c", allow_pickle=False)  # copy-on-write map: shared pages, never written
        if array.dtype != np.uint8 or array.shape != (len(ids), *shape):
            return None
        return torch.from_numpy(array)
    except (OSError, ValueError) as e:  # damaged or cut short: rebuild
        log.warning("ignoring unreadable cache file %s (%s)", path, e)
        return None


def _progress(total: int, what: str):
    """A progress bar on a terminal; elsewhere (logs of batch jobs) nothing per image."""
    from tqdm import tqdm

    return tqdm(total=total, desc=f"preprocessing {what}", unit="img", file=sys.stderr, disable=None,
                mininterval=0.5, smoothing=0.1)  # fmt: skip


def _build(
    samples: Sequence[Sample], shape: tuple[int, ...], make: Callable[[Sample], np.ndarray], workers: int | None,
    path: Path, ids_path: Path, what: str,
) -> torch.Tensor:  # fmt: skip
    """Preprocess ``samples`` straight into the cache file (never the whole array in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log.info("preprocessing %d samples (%s) into %s", len(samples), what, path)
    with atomic_output(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(samples), *shape))

        def fill(i: int) -> None:
            out[i] = make(samples[i])

        # Pillow releases the GIL while decoding and resampling, so threads use every core.
        with _progress(len(samples), what) as bar, ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for _ in pool.map(fill, range(len(samples))):
                bar.update()
        out.flush()
        del out
        atomic_write(ids_path, json.dumps([s.image_id for s in samples]))  # a crash before the rename: rebuilt
    seconds = time.perf_counter() - started
    log.info("preprocessed %d samples (%s) in %.1f s (%.0f/s)", len(samples), what, seconds, len(samples) / max(seconds, 1e-9))
    hit = _read_cache(path, ids_path, shape, [s.image_id for s in samples])
    assert hit is not None, path
    return hit


def _cached(
    kind: str, key: str, samples: Sequence[Sample], shape: tuple[int, ...], make, cache_dir, workers
) -> torch.Tensor:
    path, ids_path = cache_paths(cache_dir, kind, key)
    ids = [s.image_id for s in samples]
    hit = _read_cache(path, ids_path, shape, ids)
    if hit is not None:
        return hit
    return _build(samples, shape, make, workers, path, ids_path, kind)


def load_images(
    samples: Sequence[Sample],
    *,
    image_size: int = 256,
    crop_fraction: float = 0.8,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> tuple[torch.Tensor, str]:
    """(N, 3, S, S) uint8 preprocessed images and their cache key; built once, then read."""
    key = images_cache_key(samples, image_size, crop_fraction)

    def make(s: Sample) -> np.ndarray:
        return preprocess_image(s.image, image_size, crop_fraction)

    return _cached("images", key, samples, (3, image_size, image_size), make, cache_dir, workers), key


def load_rois(
    samples: Sequence[Sample],
    roi: str,
    *,
    roi_dir: Path | None = None,
    image_size: int = 256,
    crop_fraction: float = 0.8,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> tuple[torch.Tensor, str]:
    """(N, 1, S, S) uint8 {0, 1} reference maps through the images' geometry, and the key."""
    key = rois_cache_key(samples, roi, roi_dir, image_size, crop_fraction)

    def make(s: Sample) -> np.ndarray:
        ref = load_roi(s, roi, roi_dir)
        try:
            with Image.open(s.image) as im:  # header only: the size, no decoding
                width, height = im.size
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
            raise UserError(f"{s.image}: unreadable image ({e})") from None
        if ref.shape != (height, width):
            src = roi_sources(s, roi, roi_dir)
            raise UserError(
                f"{src[0] if src else s.image_id}: {roi} map is {ref.shape[1]}x{ref.shape[0]} "
                f"but its image is {width}x{height}"
            )
        return preprocess_map(ref, image_size, crop_fraction)[None]

    return _cached(f"rois-{roi}", key, samples, (1, image_size, image_size), make, cache_dir, workers), key


def channel_stats(images_u8: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) uint8 images, in [0, 1] units.

    Computed from exact per-channel histograms of the 256 byte values: no float rounding
    over hundreds of millions of pixels, and far faster than a float pass.
    """
    if images_u8.shape[0] == 0:
        raise UserError("cannot compute normalisation statistics of an empty training split")
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images_u8.shape[1]):
        # in blocks of images: a channel of a memory-mapped cache is never copied whole
        hist = torch.zeros(256, dtype=torch.float64)
        for start in range(0, images_u8.shape[0], _STATS_BLOCK):
            hist += torch.bincount(images_u8[start : start + _STATS_BLOCK, c].reshape(-1), minlength=256).double()
        p = hist / hist.sum()
        mean = float((p * values).sum())
        var = float((p * (values - mean) ** 2).sum())
        means.append(mean)
        stds.append(var**0.5)
    return tuple(means), tuple(stds)
