"""A dataset's files on disk → per-split lists of samples, read by its declaration.

The folder and file names are the ones the official archives unpack to (see
``attnmel/data/datasets/``), so a researcher points ``root`` at the unpacked downloads and
nothing is renamed. Images are chosen by the ids in each split's ground-truth CSV, never by
globbing: image folders also hold superpixel maps, metadata and licence files. Splits a
collection does not give are carved from training (:mod:`attnmel.data.carving`), and every
carving is recorded in the scan (and, by ``load_bundle``, in the run's ``data_info.json``).

A scan may be asked for some splits only (an external set's, ``data check --split``): it reads
the files those splits are made of (``Declaration.needs``) and nothing else, so an official
test set unpacked alone is checked and read without the training images.

Nothing here decodes an image unless asked (``file_problems``); a scan reads CSVs and folder
listings only, so 33,000 images are checked in a second.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from attnmel.config import DATASETS
from attnmel.data.carving import CarveError, carve, stratified_subset
from attnmel.data.datasets import declaration
from attnmel.data.datasets.base import MASK_SUFFIXES, SPLIT_ALIASES, SPLITS, Declaration, Source, SplitFiles
from attnmel.data.labels import LabelRow, canonical_id, read_columns, read_label_csv
from attnmel.errors import UserError

__all__ = [
    "DATASETS",
    "SPLITS",
    "Sample",
    "Scan",
    "LAYOUTS",
    "OfficialNames",
    "scan_report",
    "IMAGE_EXTENSIONS",
    "SUPERPIXELS_SUFFIX",
    "FEATURES_SUFFIX",
    "MASK_SUFFIXES",
    "source_of",
    "scan",
    "load_splits",
    "check_layout",
    "file_problems",
    "stratified_subset",
    "expected_paths",
    "find_mask",
]

FEATURES_SUFFIX = "_features.json"
SUPERPIXELS_SUFFIX = "_superpixels.png"
# The official images are JPEG; other extensions are accepted for re-encoded copies.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Sample:
    """One labelled image and the files its reference maps come from."""

    image_id: str  # "ISIC_0000000", as the ground-truth CSV spells it
    label: int  # melanoma = 1, else 0
    image: Path
    lesion: Path | None  # lesion mask if present
    superpixels: Path | None  # ISIC 2017 Part 2 superpixel PNG if present
    features: Path | None  # ISIC 2017 Part 2 features JSON if present
    group: str | None = None  # lesion or patient, where the dataset says


@dataclass
class Scan:
    """What a scan found: samples per split, one line per problem, notes (not errors), and how
    each carved split was made. A split not asked for is empty."""

    splits: dict[str, list[Sample]]
    scanned: tuple[str, ...] = SPLITS  # the splits asked for
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    carved: list[dict[str, Any]] = field(default_factory=list)
    group_name: str | None = None
    duplicates_dropped: int = 0
    masks: str | None = None  # the user's mask folder, resolved


@dataclass(frozen=True)
class OfficialNames:
    """The official name of each of one split's files (the first spelling its declaration
    accepts), relative to the dataset root: for messages and tests."""

    images: str
    labels: str
    masks: str | None
    mask_suffix: str
    features: str | None


def _official_names() -> dict[str, dict[str, OfficialNames]]:
    from attnmel.data.datasets import DECLARATIONS

    return {
        name: {s: OfficialNames(f.images[0], f.labels[0], f.masks, f.mask_suffix, f.features) for s, f in d.splits.items()}
        for name, d in DECLARATIONS.items()
        if d.bind is None  # a CSV folder's names are the user's
    }


# ``LAYOUTS[dataset][split]``: the splits each official layout has on disk (carved ones are absent).
LAYOUTS: dict[str, dict[str, OfficialNames]] = _official_names()


def source_of(dataset: str, root: str | Path, **keys: Any) -> Source:
    """A data source from plain keywords (``attnmel.config.DataSource``'s fields)."""
    from attnmel.config import DataSource

    return DataSource(dataset=dataset, root=str(root), **keys)


# --------------------------------------------------------------------------- file look-ups


def _listing(folder: Path | None) -> set[str] | None:
    """File names in a folder (one directory read instead of thousands of stat calls)."""
    if folder is None:
        return None
    try:
        return set(os.listdir(folder))
    except OSError:
        return None


def _aliases(image_id: str, suffixes: tuple[str, ...]) -> list[str]:
    """The id as written, then without or with each declared suffix (``_downsampled``)."""
    base = canonical_id(image_id, suffixes)
    return list(dict.fromkeys([image_id, base, *(base + s for s in suffixes)]))


def _find_image(folder: Path, image_id: str, listing: set[str], suffixes: tuple[str, ...]) -> Path | None:
    if image_id.lower().endswith(IMAGE_EXTENSIONS) and image_id in listing:  # a CSV folder's ids may be file names
        return folder / image_id
    for name in _aliases(image_id, suffixes):
        for ext in IMAGE_EXTENSIONS:
            if name + ext in listing:
                return folder / (name + ext)
    return None


def _find_in(folder: Path | None, listing: set[str] | None, stems: list[str], suffixes: tuple[str, ...]) -> Path | None:
    if folder is None or not listing:
        return None
    for stem in stems:
        for suffix in suffixes:
            if stem + suffix in listing:
                return folder / (stem + suffix)
    return None


def find_mask(masks: Path, image: Path) -> Path | None:
    """``image``'s lesion mask in a folder of masks (any official release's name, or ``<id>.png``), or None."""
    for name in [image.stem + s for s in MASK_SUFFIXES] + [image.stem + ".png"]:
        candidate = masks / name
        if candidate.is_file() and candidate.resolve() != image.resolve():
            return candidate
    return None


def expected_paths(sample: Sample) -> dict[str, Path]:
    """Where the official layout puts a sample's ROI sources (for messages naming a missing file)."""
    folder = sample.image.parent
    for splits in LAYOUTS.values():
        for lay in splits.values():
            if lay.images == folder.name and lay.masks:
                out = {
                    "lesion": folder.parent / lay.masks / (sample.image_id + lay.mask_suffix),
                    "superpixels": folder / (sample.image_id + SUPERPIXELS_SUFFIX),
                }
                if lay.features:
                    out["features"] = folder.parent / lay.features / (sample.image_id + FEATURES_SUFFIX)
                return out
    return {}


def _first_existing(root: Path, names: tuple[str, ...], is_dir: bool) -> Path | None:
    for name in names:
        path = root / name
        if path.is_dir() if is_dir else path.is_file():
            return path
    return None


# --------------------------------------------------------------------------- one split


@dataclass
class _Context:
    root: Path
    decl: Declaration
    scan: Scan
    user_masks: Path | None
    user_mask_listing: set[str] | None
    parsed: dict[Path, list[LabelRow]] = field(default_factory=dict)
    listed: dict[Path, set[str]] = field(default_factory=dict)  # image folder -> file names used


def _split_rows(ctx: _Context, split: str, files: SplitFiles, csv_path: Path) -> list[LabelRow]:
    """The rows of ``csv_path`` that belong to ``split`` (a split column selects them; its
    unknown values are problems, reported once per file)."""
    problems = ctx.scan.problems
    extra = [c for c in ((files.groups.column if files.groups and files.groups.file is None else None),
                         files.select[0] if files.select else None) if c]  # fmt: skip
    if csv_path not in ctx.parsed:
        rows = read_label_csv(csv_path, files.rule, problems, extra=extra, id_suffixes=ctx.decl.id_suffixes)
        if files.select:
            known = {alias: s for s, aliases in SPLIT_ALIASES.items() for alias in aliases}
            good = []
            for row in rows:
                value = row.cells[files.select[0]].lower()
                if value not in known:
                    problems.append(f"{csv_path}:{row.line}: {row.image_id}: split {row.cells[files.select[0]]!r} is "
                                    f"not train, val or test")  # fmt: skip
                    continue
                good.append(row)
            rows = [LabelRow(r.image_id, r.label, r.line, {**r.cells, "_split": known[r.cells[files.select[0]].lower()]})
                    for r in good]  # fmt: skip
        ctx.parsed[csv_path] = rows
    rows = ctx.parsed[csv_path]
    return [r for r in rows if r.cells.get("_split") == split] if files.select else rows


def _groups(ctx: _Context, files: SplitFiles, rows: list[LabelRow]) -> dict[str, str] | None:
    """image id → group (an image without one is its own), or None when the split has none."""
    spec = files.groups
    if spec is None:
        return None
    if spec.file is None:
        values = {r.image_id: r.cells.get(spec.column, "") for r in rows}
    else:
        path = ctx.root / spec.file
        if not path.is_file():
            if spec.required:
                ctx.scan.problems.append(f"{path}: not found; it names each image's {spec.name}, which the carved "
                                         f"splits need (no {spec.name} in two splits)")  # fmt: skip
            return None
        values = {r[spec.id_column]: r[spec.column] for r in read_columns(path, [spec.id_column, spec.column], ctx.scan.problems)}
        values = {r.image_id: values.get(r.image_id) or values.get(canonical_id(r.image_id, ctx.decl.id_suffixes), "")
                  for r in rows}  # fmt: skip
    return {image_id: group or f"(image) {image_id}" for image_id, group in values.items()}


def _duplicates(ctx: _Context, files: SplitFiles, rows: list[LabelRow]) -> list[LabelRow]:
    """``rows`` without the second image of each listed duplicate pair whose first is kept."""
    if files.duplicates is None:
        return rows
    path = ctx.root / files.duplicates
    if not path.is_file():
        ctx.scan.notes.append(f"{path}: not found; duplicate images, if any, are kept")
        return rows
    pairs = read_columns(path, ["image_name_1", "image_name_2"], ctx.scan.problems)
    present = {r.image_id for r in rows}
    drop = {p["image_name_2"] for p in pairs if p["image_name_1"] in present and p["image_name_2"] != p["image_name_1"]}
    kept = [r for r in rows if r.image_id not in drop]
    ctx.scan.duplicates_dropped += len(rows) - len(kept)
    return kept


def _present(root: Path, files: SplitFiles) -> bool:
    """Whether a split is on disk: its image folder or its CSV is there (an optional split
    with neither is absent; any other split is always read, so its missing files are named)."""
    if not files.optional:
        return True
    images = _first_existing(root, files.images, is_dir=True)
    return images is not None or _first_existing(root, files.labels, is_dir=False) is not None


def _presence(root: Path, decl: Declaration) -> Callable[[str], bool]:
    """``Declaration.needs``'s question for this root: is a split on disk (``_present``)?"""
    return lambda split: split in decl.splits and _present(root, decl.splits[split])


def _scan_split(ctx: _Context, split: str, files: SplitFiles) -> list[Sample] | None:
    """The split's samples; None when an optional split is absent."""
    root, problems = ctx.root, ctx.scan.problems
    if not _present(root, files):
        return None
    images_dir = _first_existing(root, files.images, is_dir=True)
    csv_path = _first_existing(root, files.labels, is_dir=False)
    if images_dir is None:
        problems.append(f"{root / files.images[0]}: image folder not found")
    if csv_path is None:
        problems.append(f"{root / files.labels[0]}: ground-truth CSV not found")
    if images_dir is None or csv_path is None:
        return []
    listed = _split_rows(ctx, split, files, csv_path)
    rows = _duplicates(ctx, files, listed)
    groups = _groups(ctx, files, rows)
    images = _listing(images_dir) or set()
    used = ctx.listed.setdefault(images_dir, set())
    # listed (in another split's rows of a shared CSV too, or dropped), so not "unlisted"
    others = {r.image_id for r in ctx.parsed[csv_path]} if files.select else set()
    for dropped in (others | {r.image_id for r in listed}) - {r.image_id for r in rows}:
        found = _find_image(images_dir, dropped, images, ctx.decl.id_suffixes)
        if found is not None:
            used.add(found.name)
    masks_dir = root / files.masks if files.masks else None
    masks = _listing(masks_dir)
    feats_dir = root / files.features if files.features else None
    feats = _listing(feats_dir)
    suffixes = ctx.decl.id_suffixes
    samples = []
    for row in rows:
        image = _find_image(images_dir, row.image_id, images, suffixes)
        if image is None:
            problems.append(f"{images_dir / (row.image_id + '.jpg')}: image listed in {csv_path.name} not found")
            continue
        used.add(image.name)
        stems = _aliases(image.stem, suffixes)
        lesion = _find_in(ctx.user_masks, ctx.user_mask_listing, stems, (*MASK_SUFFIXES, ".png"))
        if lesion is None:
            lesion = _find_in(masks_dir, masks, stems, (files.mask_suffix,))
        samples.append(
            Sample(
                image_id=row.image_id,
                label=row.label,
                image=image,
                lesion=lesion,
                superpixels=_find_in(images_dir, images, [image.stem], (SUPERPIXELS_SUFFIX,)),
                features=_find_in(feats_dir, feats, [image.stem], (FEATURES_SUFFIX,)),
                group=groups.get(row.image_id) if groups is not None else None,
            )
        )
    return samples


def _unlisted_notes(ctx: _Context) -> None:
    """Images in a folder that no CSV lists: a note (they are not used), not an error."""
    for folder, used in ctx.listed.items():
        present = sorted(
            n for n in _listing(folder) or ()
            if n.lower().endswith(IMAGE_EXTENSIONS) and not n.endswith(SUPERPIXELS_SUFFIX) and not n.startswith(".")
        )  # fmt: skip
        unlisted = [n for n in present if n not in used]
        if unlisted:
            ctx.scan.notes.append(f"{folder}: {len(unlisted)} image(s) not listed in its ground truth, left out "
                                  f"(first: {unlisted[0]})")  # fmt: skip


# --------------------------------------------------------------------------- carving


def _carve(ctx: _Context, source: Source, splits: dict[str, list[Sample]]) -> None:
    wanted = ctx.decl.carvings(_presence(ctx.root, ctx.decl))
    if not wanted or "train" not in splits:
        return
    train = splits["train"]
    if not train:
        return
    shares = {c.split: float(getattr(source, c.fraction)) for c in wanted}
    grouped = any(c.grouped for c in wanted)
    group_name = ctx.scan.group_name
    if grouped and any(s.group is None for s in train):
        return  # the groups file was missing: already a problem
    try:
        picked = carve([s.label for s in train], shares, source.val_seed,
                       groups=[s.group for s in train] if grouped else None, group_name=group_name or "group")  # fmt: skip
    except CarveError as exc:
        ctx.scan.problems.append(f"{ctx.root}: {exc}")
        return
    taken: set[int] = set()
    for c in wanted:
        index = picked[c.split].tolist()
        taken |= set(index)
        part = [train[i] for i in index]
        splits[c.split] = part
        ctx.scan.carved.append({
            "split": c.split, "from": "train", "fraction": shares[c.split], "seed": source.val_seed,
            "stratified_by": "melanoma", "grouped_by": group_name if c.grouped else None,
            "images": len(part), "melanoma": sum(s.label for s in part),
            "groups": len({s.group for s in part}) if c.grouped else None,
        })  # fmt: skip
    splits["train"] = [s for i, s in enumerate(train) if i not in taken]


# --------------------------------------------------------------------------- the scan


def scan(source: Source, splits: Sequence[str] = SPLITS) -> Scan:
    """Read ``source``'s layout: samples per split (train, val, test), problems, notes, carvings.

    ``splits``: the splits wanted; only the files they are made of are read (and checked), the
    others are left empty. Cheap: reads the CSVs and folder listings, decodes no image.
    """
    decl = declaration(source.dataset).bound(source)
    root = Path(source.root).expanduser()
    wanted = tuple(s for s in SPLITS if s in splits)
    result = Scan(splits={s: [] for s in SPLITS}, scanned=wanted)
    if not root.is_dir():
        result.problems.append(f"{root}: dataset root folder not found")
        return result
    user_masks = None
    if source.masks is not None:
        user_masks = root / Path(source.masks).expanduser()
        result.masks = str(user_masks)
        if not user_masks.is_dir():
            result.problems.append(f"{user_masks}: masks folder not found (data.masks)")
            return result
    ctx = _Context(root, decl, result, user_masks, _listing(user_masks))
    read = decl.needs(wanted, _presence(root, decl))
    groups = [g.name for name in read if (g := decl.splits[name].groups) is not None]
    result.group_name = groups[0] if groups else None
    splits: dict[str, list[Sample]] = {}
    for name in read:
        found = _scan_split(ctx, name, decl.splits[name])
        if found is not None:
            splits[name] = found
    _unlisted_notes(ctx)
    _carve(ctx, source, splits)
    # The same image in two splits would leak test data into training.
    owner: dict[str, str] = {}
    for name in SPLITS:
        for s in splits.get(name, []):
            key = canonical_id(s.image_id, decl.id_suffixes)
            if key in owner:
                result.problems.append(f"image id {s.image_id} appears in both {owner[key]} and {name}")
            owner[key] = name
    everything = [s for name in SPLITS for s in splits.get(name, [])]
    if user_masks is not None and everything and not any(s.lesion is not None and s.lesion.parent == user_masks for s in everything):
        result.problems.append(f"{user_masks}: the masks folder holds no lesion mask of any of the {len(everything)} images "
                               f"(looked for <id>_segmentation.png or <id>.png, e.g. {everything[0].image_id}_segmentation.png)")  # fmt: skip
    result.splits = {name: splits.get(name, []) if name in wanted else [] for name in SPLITS}
    return result


def _raise_first(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more; run `attnmel data check`)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)


def load_splits(
    dataset: str | Source,
    root: Path | str | None = None,
    *,
    splits: Sequence[str] = SPLITS,
    **keys: Any,
) -> dict[str, list[Sample]]:
    """Samples per split ("train", "val", "test") of a data source, or of ``dataset`` under
    ``root`` with the source's other keys (``val_fraction``, ``val_seed``, ``masks``, the CSV
    keys); only ``splits`` are read (the others are empty). Raises ``UserError`` with the
    first problem found (``check_layout`` lists them all)."""
    source = dataset if not isinstance(dataset, str) else source_of(dataset, root, **keys)
    found = scan(source, splits)
    _raise_first(found.problems)
    return found.splits


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
    groups = {s.group for s in samples if s.group is not None}
    return {
        "images": len(samples),
        "melanoma": melanoma,
        "other": len(samples) - melanoma,
        "roi": {
            "lesion": sum(s.lesion is not None for s in samples),
            "dermo": sum(s.superpixels is not None and s.features is not None for s in samples),
        },
        "groups": len(groups) if groups else None,  # lesions or patients, where the dataset names them
    }


def scan_report(source: Source, found: Scan) -> dict:
    """The ``attnmel data check --json`` object of a scan (``problems`` added by the caller)."""
    report: dict[str, Any] = {
        "dataset": source.dataset,
        "splits": {name: _split_report(found.splits[name]) for name in found.scanned},
        "grouped_by": found.group_name,
        "carved": found.carved,
        "duplicates_dropped": found.duplicates_dropped,
        "notes": found.notes,
    }
    if found.masks is not None:
        report["masks"] = found.masks
    return report


def check_layout(
    dataset: str | Source,
    root: Path | str | None = None,
    *,
    decode: bool = True,
    splits: Sequence[str] = SPLITS,
    **keys: Any,
) -> tuple[dict, list[str]]:
    """Validate a dataset folder; return ``(report, problems)``.

    ``report`` is the ``attnmel data check --json`` object: per split the number of images,
    melanoma and other, how many samples have each ROI source and how many lesions/patients
    they come from; how carved splits were made; notes. ``problems`` holds one line per
    problem and is empty when the dataset is usable. ``decode=True`` decodes every image and
    mask (finds truncated files); otherwise only headers are read. ``splits``: check these
    only, and only the files they are made of (the report lists them alone).
    """
    source = dataset if not isinstance(dataset, str) else source_of(dataset, root, **keys)
    found = scan(source, splits)
    problems = found.problems + file_problems([s for name in SPLITS for s in found.splits[name]], decode=decode)
    return scan_report(source, found), problems

