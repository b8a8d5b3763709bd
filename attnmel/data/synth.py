"""Synthetic ISIC-like datasets written in the exact layout of each declared collection.

Used by the demo and the tests instead of shipping data. Every file a declaration names is
written with its official name (``attnmel/data/datasets/``): images, ground-truth CSVs in the
collection's own format (ISIC 2016 without header, training benign/malignant, test 0.0/1.0;
ISIC 2017 0.0/1.0 with the metadata CSV, Part 1 masks and Part 2 superpixels and features;
ISIC 2018/2019 one-hot with lesion groupings or metadata, and ``_downsampled`` ids in 2019;
ISIC 2020 with patients and a duplicates list; a CSV folder with a split and a lesion column),
lesion masks where the release has them (ISIC 2018: the HAM10000 segmentation folder beside
it). Images of one lesion or patient are consecutive.

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

Masks are written for every split that has them, including test, and never include the sticker.
``splits`` (``attnmel data synth --splits``) keeps only the files some splits are made of, as a
download of them alone unpacks (an official test set without its training images).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from attnmel.data.datasets import csvfolder, declaration
from attnmel.data.datasets.base import SPLITS, Declaration
from attnmel.data.layout import SUPERPIXELS_SUFFIX, source_of
from attnmel.data.roi import DERMO_FEATURES
from attnmel.errors import UserError

__all__ = [
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


def _groups(rng: np.random.Generator, n: int, sizes: tuple[int, int] | None, name: str | None, start: int) -> list[str]:
    """Consecutive images share a lesion (or a patient), ``sizes`` images each; "" without groups."""
    if sizes is None or name is None:
        return [""] * n
    prefix = {"patient_id": "IP", "lesion_id": "IL"}.get(name, "G")
    out: list[str] = []
    k = start
    while len(out) < n:
        out += [f"{prefix}_{k:07d}"] * int(rng.integers(sizes[0], sizes[1] + 1))
        k += 1
    return out[:n]


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _add_rows(files: dict[Path, list[list[str]]], path: Path, rows: list[list[str]], header: bool) -> None:
    """Rows for one file; splits that share a file (a CSV folder) add theirs under one header."""
    if path in files and header:
        rows = rows[1:]
    files.setdefault(path, []).extend(rows)


def _write_split(
    out: Path,
    decl: Declaration,
    split: str,
    ids: list[str],
    labels: np.ndarray,
    size: int,
    rng: np.random.Generator,
    csv_files: dict[Path, list[list[str]]],
    *,
    signal: float,
    marked: np.ndarray | None,
    group_start: int,
    written: list[Path],
) -> int:
    """Images, masks, Part 2 files of one split (their paths appended to ``written``); its CSV
    rows go to ``csv_files``. Returns the number of groups it used."""
    files, plan = decl.splits[split], decl.synth
    height, width = size, size * 4 // 3
    images = out / files.images[0]
    images.mkdir(parents=True, exist_ok=True)
    mask_folder = files.masks or plan.masks_for.get(split)
    if mask_folder:
        (out / mask_folder).mkdir(exist_ok=True)
    if files.features:
        feats_dir = out / files.features
        feats_dir.mkdir()
        sp_index, sp_rgb = _superpixels(height, width, max(4, size // 12))
    for i, (image_id, label) in enumerate(zip(ids, labels)):
        img, mask = synth_lesion(rng, height, width, bool(label), signal=signal)
        if marked is not None and marked[i]:
            img = draw_marker(rng, img, mask)
        Image.fromarray(img).save(images / f"{image_id}.jpg", quality=92)
        written.append(images / f"{image_id}.jpg")
        if mask_folder:
            Image.fromarray(mask.astype(np.uint8) * 255).save(out / mask_folder / f"{image_id}{files.mask_suffix}")
            written.append(out / mask_folder / f"{image_id}{files.mask_suffix}")
        if files.features:
            Image.fromarray(sp_rgb).save(images / f"{image_id}{SUPERPIXELS_SUFFIX}")
            feats = _features(rng, sp_index, mask, bool(label))
            (feats_dir / f"{image_id}_features.json").write_text(json.dumps(feats))
            written += [images / f"{image_id}{SUPERPIXELS_SUFFIX}"]
            written += [feats_dir / f"{image_id}_features.json"]
    name = files.groups.name if files.groups else None
    groups = _groups(rng, len(ids), plan.group_sizes, name, group_start)
    if files.duplicates and plan.duplicates:
        # the same image again under a new id, listed in the ground truth and the duplicates file
        twins = [f"{image_id}9" for image_id in ids[: plan.duplicates]]
        for original, twin in zip(ids, twins):
            shutil.copyfile(images / f"{original}.jpg", images / f"{twin}.jpg")
            written.append(images / f"{twin}.jpg")
        pairs = [["image_name_1", "image_name_2"], *([a, b] for a, b in zip(ids, twins))]
        _add_rows(csv_files, out / files.duplicates, pairs, header=True)
        ids, labels, groups = ids + twins, np.concatenate([labels, labels[: len(twins)]]), groups + groups[: len(twins)]
    if plan.label_rows is not None:
        rows = plan.label_rows(split, ids, labels, groups, rng)
    else:
        head = files.rule.header_row()
        rows = ([head] if head else []) + [[i, *files.rule.cells(int(m), rng)] for i, m in zip(ids, labels)]
    _add_rows(csv_files, out / files.labels[0], rows, header=files.rule.header_row() is not None)
    written.append(out / files.labels[0])
    if plan.extra_files is not None:
        for rel, extra in plan.extra_files(split, ids, labels, groups, rng).items():
            _add_rows(csv_files, out / rel, extra, header=True)
            written.append(out / rel)
    if files.duplicates and plan.duplicates:
        written.append(out / files.duplicates)
    return len(set(groups))


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


def _top_names(decl: Declaration, counts: dict[str, int]) -> list[str]:
    """The files and folders directly under the root that a copy writes (as declared)."""
    names = []
    for split in counts:
        masks = decl.synth.masks_for.get(split)
        names += [*decl.splits[split].top_names(), *([masks.split("/")[0]] if masks else [])]
    return list(dict.fromkeys(names))


def _leave_out(tmp: Path, written: dict[str, list[Path]], keep: set[str]) -> None:
    """Delete the files of the splits not kept (a file a kept split wrote too stays), then the
    folders that left empty."""
    kept = {p for split in keep for p in written[split]}
    for split, paths in written.items():
        if split not in keep:
            for path in set(paths) - kept:
                path.unlink(missing_ok=True)
    folders = sorted((p for p in tmp.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
    for folder in reversed(folders):
        if not any(folder.iterdir()):
            folder.rmdir()


def _synth_declaration(dataset: str) -> Declaration:
    """The declaration a synthetic copy is written by (a CSV folder: the keys ``SYNTH_KEYS``, with a split column)."""
    decl = declaration(dataset)
    if decl.bind is None:
        return decl
    return decl.bound(source_of(dataset, ".", **csvfolder.SYNTH_KEYS, split_column=csvfolder.SYNTH_SPLIT_COLUMN))


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
    splits: Sequence[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Write a synthetic ``dataset`` under ``root``; return {split: {"images", "melanoma"}}
    (plus "marked", the images carrying the confounder, for the confounded task).

    ``task``, ``signal`` and ``confounder_rate`` are described in the module docstring.
    ``splits``: write only the files these splits are made of (``Declaration.needs``), as a
    download of them alone unpacks; every split is still drawn, so what is written equals that
    part of a full copy, and a CSV that other splits share keeps their rows. The result
    counts the splits on disk that were written.
    Refuses to touch existing official files unless ``overwrite``. Everything is written to
    a temporary folder inside ``root`` first and moved into place at the end.
    """
    decl = _synth_declaration(dataset)
    plan = decl.synth
    for split, n in (("val", n_val), ("test", n_test)):
        if n and split not in plan.counts:
            how = "carved from training" if any(c.split == split for c in decl.carve) else "not part of it"
            raise UserError(f"{dataset} has no {'validation' if split == 'val' else 'test'} split to synthesise; "
                            f"it is {how}" + (" (data.val_fraction)" if split == "val" else " (data.test_fraction)"))  # fmt: skip
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
    wanted = {"train": n_train, "val": n_val, "test": n_test}
    counts = {s: plan.counts[s] if wanted[s] is None else wanted[s] for s in plan.counts}
    for split, n in counts.items():
        if n < 1:
            raise UserError(f"--n-{split} must be at least 1, got {n}")
    unknown = [s for s in splits or () if s not in SPLITS]
    if unknown:
        raise UserError(f"unknown split {unknown[0]!r}; choose among {', '.join(SPLITS)}")
    keep = set(counts) if splits is None else set(decl.needs(splits, lambda split: split in splits))

    root = Path(root).expanduser()
    written_counts = {s: n for s, n in counts.items() if s in keep}
    clash = [n for n in _top_names(decl, written_counts) if (root / n).exists()]
    if clash and not overwrite:
        raise UserError(f"{root / clash[0]} already exists; pick an empty folder or pass --force")
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    result: dict[str, dict[str, int]] = {}
    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=root))
    try:
        next_id, next_group = 0, 0
        csv_files: dict[Path, list[list[str]]] = {}
        written: dict[str, list[Path]] = {}
        for split, n in counts.items():
            ids = plan.ids(split, next_id, n)
            next_id += n
            labels = _labels(rng, n, melanoma_fraction)
            marked = None
            if task == "confounded":
                marked = _markers(rng, labels, confounder_rate if split == "train" else 0.5)
            written[split] = []
            next_group += _write_split(
                tmp, decl, split, ids, labels, size, rng, csv_files,
                signal=signal, marked=marked, group_start=next_group, written=written[split],
            )
            if split in keep:
                result[split] = {"images": n, "melanoma": int(labels.sum())}
                if marked is not None:
                    result[split]["marked"] = int(marked.sum())
        for path, rows in csv_files.items():
            _write_csv(path, rows)
        _leave_out(tmp, written, keep)
        names = sorted({p.relative_to(tmp).parts[0] for p in tmp.rglob("*")})
        existing = [n for n in names if (root / n).exists()]
        if existing and not overwrite:
            raise UserError(f"{root / existing[0]} already exists; pick an empty folder or pass --force")
        for name in existing:
            target = root / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        for name in names:
            os.replace(tmp / name, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result
