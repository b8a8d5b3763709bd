"""Synthetic ISIC-like dataset written in the exact official layout.

Used by the demo and the tests instead of shipping data. Every file the official archives
hold is written with its official name: images, the metadata CSV (2017), Part 1 masks,
Part 2 superpixel PNGs + feature JSONs (2017), and the Part 3 ground-truth CSVs (2017 with
header and 0.0/1.0; 2016 without header, training benign/malignant, test 0.0/1.0).

Lesions follow the dermatologists' ABCD cues so that a small CNN separates the classes in a
few epochs at 32–64 px: melanoma is Asymmetric, has an irregular Border, variegated Colour
(black, blue-grey, red patches) and is darker; other lesions are round-ish, smooth and of
one light-brown tone. Images are 4:3, like the originals, so the centre crop matters.

Knobs (keyword arguments of ``write_synthetic``, ``attnmel data synth --task/--signal/
--confounder-rate``, and keys of a sweep spec's ``dataset.synthetic``):

* ``task="abcd"`` (default): the lesion is the only difference between the classes, drawn
  with full cues; the files are those of earlier versions for the same seed.
* ``task="confounded"``: a known-answer benchmark for attention regularisation. The class
  signal still lives only inside the lesion, but weakened; outside it, a spurious cue — a
  pale green round sticker, like the colour and scale stickers of real dermoscopy images,
  towards a corner of the centre crop and never on the lesion — agrees with the label in
  most *training* images and is independent of it in validation and test. A network that
  looks at the lesion generalises; one that learns the sticker does not. The sticker is as
  light as the skin and green, unlike any lesion colour, so that a lesion detector (what the
  Dice-regularised attention learns) does not fire on it.
* ``signal`` in [0, 1]: strength of the melanoma cues, interpolating each of them (asymmetry,
  border, darkness, colour variegation) from the full look (1) to the benign look (0).
  Default 1.0 for ``abcd`` and ``DEFAULT_SIGNAL["confounded"]`` for ``confounded``.
* ``confounder_rate`` in [0, 1] (confounded task only; default ``DEFAULT_CONFOUNDER_RATE``):
  the share of training images whose sticker agrees with the label (melanoma marked, other
  unmarked), held exactly within each class. Validation and test use 0.5: half of each
  class is marked, so the sticker says nothing about the label there. ISIC 2016 has no
  validation folder; the one carved from its training split inherits the training rate.

Masks (Part 1) are written for every split, including test, and never include the sticker.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from attnmel.data.layout import DATASETS, LAYOUTS, SplitLayout
from attnmel.data.roi import DERMO_FEATURES
from attnmel.errors import UserError

__all__ = [
    "DEFAULT_COUNTS",
    "TASKS",
    "DEFAULT_SIGNAL",
    "DEFAULT_CONFOUNDER_RATE",
    "write_synthetic",
    "synth_lesion",
    "draw_marker",
]

TASKS = ("abcd", "confounded")
# Chosen with benchmarks/confounded_effects.py at the demo's size (96 training images, 32 px
# crops, 5 epochs from scratch): weak enough that AttnMel-CNN reaches a test AUC of only about
# 0.6-0.8, strong enough that it learns something; see that script's docstring for the effects.
DEFAULT_SIGNAL = {"abcd": 1.0, "confounded": 0.12}
DEFAULT_CONFOUNDER_RATE = 0.95

# (train, val, test) images; ISIC 2016 has no official validation split.
DEFAULT_COUNTS = {"isic2017": (48, 16, 24), "isic2016": (64, 0, 24)}

_SKIN = np.array([222.0, 178.0, 156.0])
_BENIGN = np.array([165.0, 112.0, 80.0])
_MELANOMA = np.array([105.0, 62.0, 45.0])
_VARIEGATION = np.array([[40.0, 28.0, 28.0], [92.0, 100.0, 128.0], [165.0, 62.0, 62.0], [72.0, 42.0, 30.0]])
_STICKER = np.array([125.0, 205.0, 120.0])  # pale green: skin-light, and no skin or lesion colour is green


def synth_lesion(
    rng: np.random.Generator, height: int, width: int, melanoma: bool, *, signal: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """One dermoscopy-like image: (H, W, 3) uint8 RGB and its (H, W) bool lesion mask.

    ``signal`` in [0, 1] scales every melanoma cue (asymmetry, border, darkness, variegation)
    from fully present (1) to the benign look (0); benign lesions ignore it. The random draws
    do not depend on it, so two signals give the same lesion with stronger or weaker cues.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    short = min(height, width)
    cy = height / 2 + rng.uniform(-0.06, 0.06) * short
    cx = width / 2 + rng.uniform(-0.06, 0.06) * short
    dy, dx = yy - cy, xx - cx
    dist, theta = np.hypot(dy, dx), np.arctan2(dy, dx)

    r0 = rng.uniform(0.2, 0.27) * short
    shape = 1 + rng.uniform(0.0, 0.12) * np.cos(2 * (theta - rng.uniform(0, np.pi)))  # mild ellipse
    if melanoma:
        shape += signal * rng.uniform(0.15, 0.28) * np.cos(theta - rng.uniform(0, 2 * np.pi))  # asymmetry
        for k in rng.choice(np.arange(5, 15), size=4, replace=False):  # ragged border
            shape += signal * rng.uniform(0.04, 0.09) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    else:
        shape += 0.02 * np.cos(3 * theta + rng.uniform(0, 2 * np.pi))
    radius = r0 * shape
    mask = dist < radius

    skin = _SKIN + rng.normal(0, 8, 3)
    gradient = (xx / width - 0.5)[..., None] * rng.normal(0, 12, 3)  # uneven illumination
    img = skin + gradient
    inner = np.clip(1 - dist / np.maximum(radius, 1e-6), 0, 1)[..., None]  # 1 at centre, 0 at border
    if melanoma:
        # signal = 1 gives exactly the full cues: every interpolation below is exact there
        base = _BENIGN + signal * (_MELANOMA - _BENIGN)
        lesion = base + rng.normal(0, 8, 3) - (12 + 13 * signal) * inner
        alpha = 0.85 * signal
        for colour in _VARIEGATION[rng.permutation(4)[: rng.integers(2, 5)]]:
            angle, off = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.6) * r0
            by, bx = cy + off * np.sin(angle), cx + off * np.cos(angle)
            blob = np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * (rng.uniform(0.15, 0.35) * r0) ** 2))
            lesion = lesion * (1 - alpha * blob[..., None]) + colour * alpha * blob[..., None]
    else:
        lesion = _BENIGN + rng.normal(0, 8, 3) - 12 * inner
    edge = np.clip((radius - dist) / (0.06 * r0), 0, 1)[..., None]  # soft border
    img = img * (1 - edge) + lesion * edge
    img += rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def draw_marker(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Stick a pale green disc on the skin of ``img`` (H, W, 3) uint8, never on the lesion ``mask``.

    The disc (radius 0.08·H) sits towards one corner of the central 0.6·H square, so it
    survives the centre crops of preprocessing and evaluation; the corner is the one the
    lesion leaves freest. Returns a new uint8 image.
    """
    height, width = mask.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    radius = 0.08 * height
    best = None
    for sy, sx in rng.permutation([(-1, -1), (-1, 1), (1, -1), (1, 1)]):
        off = rng.uniform(0.19, 0.23) * height
        cy, cx = height / 2 + sy * off, width / 2 + sx * off
        disc = np.clip(radius + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1)  # anti-aliased edge
        hidden = float((disc * mask).sum())
        if best is None or hidden < best[0]:
            best = (hidden, disc)
    weight = (best[1] * ~mask)[..., None]  # the lesion stays on top, and its mask stays exact
    colour = _STICKER + rng.normal(0, 6, 3)
    out = img * (1 - weight) + colour * weight
    return np.clip(out, 0, 255).astype(np.uint8)


def _superpixels(height: int, width: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid superpixels: (H, W) index and the (H, W, 3) uint8 PNG encoding R + 256·G + 65536·B."""
    rows, cols = -(-height // cell), -(-width // cell)
    index = (np.arange(height)[:, None] // cell) * cols + (np.arange(width)[None, :] // cell)
    assert rows * cols < 1 << 24
    rgb = np.stack([index & 0xFF, (index >> 8) & 0xFF, (index >> 16) & 0xFF], axis=-1).astype(np.uint8)
    return index, rgb


def _features(rng: np.random.Generator, index: np.ndarray, mask: np.ndarray, melanoma: bool) -> dict[str, list[int]]:
    """Per-feature 0/1 lists over the superpixels; features lie on the lesion, some images have none."""
    n = int(index.max()) + 1
    inside = np.bincount(index.ravel(), weights=mask.ravel(), minlength=n) / np.bincount(index.ravel(), minlength=n)
    core, border = inside > 0.6, (inside > 0.1) & (inside <= 0.6)
    feats = {name: np.zeros(n, dtype=bool) for name in DERMO_FEATURES}
    if rng.random() >= 0.25:  # a quarter of the images show no feature at all, as in ISIC 2017
        if melanoma:
            feats["pigment_network"] = core & (rng.random(n) < 0.4)
            feats["negative_network"] = core & (rng.random(n) < 0.15)
            feats["streaks"] = border & (rng.random(n) < 0.6)
        else:
            feats["pigment_network"] = core & (rng.random(n) < 0.5)
            feats["milia_like_cyst"] = core & (rng.random(n) < 0.1)
    return {name: v.astype(int).tolist() for name, v in feats.items()}


def _labels(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    n_mel = round(fraction * n)
    if n >= 2 and 0 < fraction < 1:
        n_mel = min(max(n_mel, 1), n - 1)  # both classes in every split
    labels = np.zeros(n, dtype=np.int64)
    labels[rng.permutation(n)[:n_mel]] = 1
    return labels


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _write_split(
    out: Path,
    dataset: str,
    official: str,
    lay: SplitLayout,
    ids: list[str],
    labels: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    signal: float,
    marked: np.ndarray | None,
) -> None:
    height, width = size, size * 4 // 3
    images = out / lay.images
    masks = out / lay.masks
    images.mkdir()
    masks.mkdir()
    if lay.features:
        feats_dir = out / lay.features
        feats_dir.mkdir()
        sp_index, sp_rgb = _superpixels(height, width, max(4, size // 12))
    for i, (image_id, label) in enumerate(zip(ids, labels)):
        img, mask = synth_lesion(rng, height, width, bool(label), signal=signal)
        if marked is not None and marked[i]:
            img = draw_marker(rng, img, mask)
        Image.fromarray(img).save(images / f"{image_id}.jpg", quality=92)
        Image.fromarray(mask.astype(np.uint8) * 255).save(masks / f"{image_id}{lay.mask_suffix}")
        if lay.features:
            Image.fromarray(sp_rgb).save(images / f"{image_id}_superpixels.png")
            feats = _features(rng, sp_index, mask, bool(label))
            (feats_dir / f"{image_id}_features.json").write_text(json.dumps(feats))
    if dataset == "isic2017":
        sk = (labels == 0) & (rng.random(len(ids)) < 0.2)  # seborrheic keratosis among the others
        rows = [["image_id", "melanoma", "seborrheic_keratosis"]]
        rows += [[i, f"{float(m):.1f}", f"{float(k):.1f}"] for i, m, k in zip(ids, labels, sk)]
        _write_csv(out / lay.labels, rows)
        meta = [["image_id", "age_approximate", "sex"]]
        meta += [[i, str(int(rng.integers(3, 17)) * 5), str(rng.choice(["male", "female"]))] for i in ids]
        _write_csv(images / f"{lay.images}_metadata.csv", meta)
    elif official == "train":
        _write_csv(out / lay.labels, [[i, "malignant" if m else "benign"] for i, m in zip(ids, labels)])
    else:
        _write_csv(out / lay.labels, [[i, f"{float(m):.1f}"] for i, m in zip(ids, labels)])


def _markers(rng: np.random.Generator, labels: np.ndarray, rate: float) -> np.ndarray:
    """Which images carry the marker: in each class exactly round(rate·n) agree with the label
    (melanoma marked, other unmarked), so the requested rate holds in every split, not on average."""
    marked = np.zeros(len(labels), dtype=bool)
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        agree = np.zeros(len(idx), dtype=bool)
        agree[rng.permutation(len(idx))[: round(rate * len(idx))]] = True
        marked[idx] = agree if cls == 1 else ~agree
    return marked


def write_synthetic(
    dataset: str,
    root: Path,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    size: int = 96,
    melanoma_fraction: float = 0.3,
    seed: int = 0,
    overwrite: bool = False,
    task: str = "abcd",
    signal: float | None = None,
    confounder_rate: float | None = None,
) -> dict[str, dict[str, int]]:
    """Write a synthetic ``dataset`` under ``root``; return {split: {"images", "melanoma"}}
    (plus "marked", the images carrying the confounder, for the confounded task).

    ``task``, ``signal`` and ``confounder_rate`` are described in the module docstring.
    Refuses to touch existing official files unless ``overwrite``. Everything is written to
    a temporary folder inside ``root`` first and moved into place at the end.
    """
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "isic2016" and n_val:
        raise UserError(
            "isic2016 has no validation split to synthesise; it is carved from training (data.val_fraction)"
        )
    if size < 16:
        raise UserError(f"--size must be at least 16 px, got {size}")
    if not 0.0 <= melanoma_fraction <= 1.0:
        raise UserError(f"--melanoma-fraction must be in [0, 1], got {melanoma_fraction}")
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if signal is None:
        signal = DEFAULT_SIGNAL[task]
    if not 0.0 <= signal <= 1.0:
        raise UserError(f"--signal must be in [0, 1], got {signal}")
    if task != "confounded" and confounder_rate is not None:
        raise UserError(f"--confounder-rate needs --task confounded (task {task!r} has no confounder)")
    if confounder_rate is None:
        confounder_rate = DEFAULT_CONFOUNDER_RATE
    if not 0.0 <= confounder_rate <= 1.0:
        raise UserError(f"--confounder-rate must be in [0, 1], got {confounder_rate}")
    defaults = dict(zip(("train", "val", "test"), DEFAULT_COUNTS[dataset]))
    wanted = {"train": n_train, "val": n_val, "test": n_test}
    counts = {s: defaults[s] if wanted[s] is None else wanted[s] for s in LAYOUTS[dataset]}
    for split, n in counts.items():
        if n < 1:
            raise UserError(f"--n-{split} must be at least 1, got {n}")

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    names = [n for lay in LAYOUTS[dataset].values() for n in (lay.images, lay.labels, lay.masks, lay.features) if n]
    existing = [n for n in names if (root / n).exists()]
    if existing and not overwrite:
        raise UserError(f"{root / existing[0]} already exists; pick an empty folder or pass --force")

    rng = np.random.default_rng(seed)
    result: dict[str, dict[str, int]] = {}
    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=root))
    try:
        next_id = 0
        for split, lay in LAYOUTS[dataset].items():
            n = counts[split]
            ids = [f"ISIC_{i:07d}" for i in range(next_id, next_id + n)]
            next_id += n
            labels = _labels(rng, n, melanoma_fraction)
            marked = None
            if task == "confounded":
                marked = _markers(rng, labels, confounder_rate if split == "train" else 0.5)
            _write_split(tmp, dataset, split, lay, ids, labels, size, rng, signal=signal, marked=marked)
            result[split] = {"images": n, "melanoma": int(labels.sum())}
            if marked is not None:
                result[split]["marked"] = int(marked.sum())
        for name in existing:
            target = root / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        for name in names:
            os.replace(tmp / name, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
