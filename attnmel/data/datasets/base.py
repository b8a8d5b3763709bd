"""The vocabulary a dataset declaration is written in (torch-free, numpy-free: the training
config imports the declarations to validate ``data.dataset``).

A :class:`Declaration` says everything the code needs to know about one collection: the
splits on disk (:class:`SplitFiles`: image folder, ground-truth CSV and its :class:`LabelRule`,
lesion masks, Part 2 files, where the lesion or patient of each image is written
(:class:`Groups`), duplicate lists), the splits carved from training (:class:`Carving`), the
paper's ``passes`` default, official normalisation constants, the official archives
(:class:`Archive`) and how ``attnmel data synth`` writes a synthetic copy
(:class:`SynthPlan`). The generic readers (``attnmel.data.layout``, ``labels``, ``carving``,
``synth``, ``download``) hold no knowledge of any particular year.

A split on disk is read from its own :class:`SplitFiles` alone and a carved split from the
training split's (:meth:`Declaration.needs`), so one split of a download (an official test
set) is checked and read without the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "SPLITS",
    "SPLIT_CHOICES",
    "SPLIT_ALIASES",
    "MASK_SUFFIXES",
    "LabelRule",
    "ColumnLabels",
    "OneHotLabels",
    "MatchLabels",
    "Groups",
    "SplitFiles",
    "Carving",
    "Archive",
    "SynthPlan",
    "Declaration",
    "Source",
    "chosen_splits",
]

SPLITS = ("train", "val", "test")
# What a user may name where one split or all of them are meant (an external set, `data check`).
SPLIT_CHOICES = (*SPLITS, "all")
# How a split column may spell each split (a CSV folder's ``split_column``), lower-cased.
SPLIT_ALIASES = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
# Lesion mask names of the official releases (2017/2018/HAM10000, 2016); a folder of masks may
# also hold plain ``<image_id>.png``.
MASK_SUFFIXES = ("_segmentation.png", "_Segmentation.png")


class Source(Protocol):
    """What names one dataset's files: ``attnmel.config.DataSource`` and its subclasses."""

    dataset: str
    root: str
    masks: str | None
    images: str | None
    labels: str | None
    id_column: str | None
    label_column: str | None
    positive: str | None
    group_column: str | None
    split_column: str | None


def chosen_splits(choice: str) -> tuple[str, ...]:
    """The splits a :data:`SPLIT_CHOICES` value names: itself, or every split for ``all``."""
    return SPLITS if choice == "all" else (choice,)


# --------------------------------------------------------------------------- labels


class LabelRule(Protocol):
    """How one ground-truth CSV says melanoma (1) or not (0)."""

    id_column: str | None  # None: the file has no header row

    def required(self) -> tuple[str, ...]:
        """The header's columns this rule reads."""

    def label(self, cells: Mapping[str, str]) -> int | str:
        """The label of one row (cells by column name), or the problem with it as text."""

    def header_row(self) -> list[str] | None:
        """Synth: the header the official file has (None: no header)."""

    def cells(self, label: int, rng: Any) -> list[str]:
        """Synth: the label cells of one row of the official file."""


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ColumnLabels:
    """One column whose values map to labels: ``melanoma`` 0.0/1.0 (2017), ``target`` 0/1 (2020),
    benign/malignant (2016, whose files have no header: ids in column 0, labels in column 1)."""

    id_column: str | None
    label_column: str | None
    values: Mapping[str, int]  # cell text, stripped and lower-cased -> label
    allowed: str  # how messages name the accepted values: "0/1"
    write: tuple[str, str] = ("0.0", "1.0")  # synth: the cell text of (other, melanoma)
    header_ids: tuple[str, ...] = ()  # headerless files: a first cell that marks an added header row
    extra: tuple[str, ...] = ()  # synth: further columns the official file has (filled by the plan)

    def required(self) -> tuple[str, ...]:
        return () if self.id_column is None else (self.id_column, self.label_column or "")

    def label(self, cells: Mapping[str, str]) -> int | str:
        raw = cells[self.label_column or "1"]
        value = self.values.get(raw.strip().lower())
        return value if value is not None else f"label {raw.strip()!r} is not {self.allowed}"

    def header_row(self) -> list[str] | None:
        return None if self.id_column is None else [self.id_column, self.label_column or "", *self.extra]

    def cells(self, label: int, rng: Any) -> list[str]:
        return [self.write[int(label)]]


@dataclass(frozen=True)
class OneHotLabels:
    """One 0/1 column per diagnosis, exactly one of them 1 (2018 Task 3, 2019); melanoma is
    the ``positive`` column."""

    id_column: str
    classes: tuple[str, ...]
    positive: str = "MEL"

    def required(self) -> tuple[str, ...]:
        return (self.id_column, *self.classes)

    def label(self, cells: Mapping[str, str]) -> int | str:
        values = [_number(cells[c]) for c in self.classes]
        bad = [c for c, v in zip(self.classes, values) if v not in (0.0, 1.0)]
        if bad:
            return f"{bad[0]} is {cells[bad[0]].strip()!r}, not 0 or 1"
        total = sum(values)
        if total != 1.0:
            return f"one-hot row sums to {total:g}, expected exactly one 1 among {', '.join(self.classes)}"
        return int(values[self.classes.index(self.positive)])

    def header_row(self) -> list[str] | None:
        return [self.id_column, *self.classes]

    def cells(self, label: int, rng: Any) -> list[str]:
        others = [c for c in self.classes if c != self.positive and c != "UNK"]
        chosen = self.positive if label else others[int(rng.integers(len(others)))]
        return ["1.0" if c == chosen else "0.0" for c in self.classes]


@dataclass(frozen=True)
class MatchLabels:
    """A CSV folder's rule: ``label_column`` equal to ``positive`` is melanoma, any other value
    is not (numbers compare as numbers, so ``1`` matches ``1.0``); an empty cell is an error."""

    id_column: str
    label_column: str
    positive: str

    def required(self) -> tuple[str, ...]:
        return (self.id_column, self.label_column)

    def label(self, cells: Mapping[str, str]) -> int | str:
        raw = cells[self.label_column].strip()
        if not raw:
            return f"empty {self.label_column!r}"
        a, b = _number(raw), _number(self.positive)
        same = a == b if a is not None and b is not None else raw.lower() == self.positive.strip().lower()
        return int(same)

    def header_row(self) -> list[str] | None:
        return [self.id_column, self.label_column]

    def cells(self, label: int, rng: Any) -> list[str]:
        return [self.positive if label else "other"]


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class Groups:
    """Where each image's lesion (or patient) is written; carving never splits a group."""

    name: str  # what it is called in reports and data_info.json: "lesion_id", "patient_id"
    column: str  # the column holding it
    file: str | None = None  # a CSV beside the labels (relative to the root); None: the labels CSV
    id_column: str = "image"  # the image id column of ``file``
    required: bool = False  # a carving needs it; otherwise read where present
    filler: str = ""  # synth: how the official file spells a missing group (ISIC 2019: empty)


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split that exists on disk, relative to the dataset root."""

    images: tuple[str, ...]  # image folder; the first that exists (ISIC 2020: official name, then train/)
    labels: tuple[str, ...]  # ground-truth CSV; the first that exists (ISIC 2020: _v2 first)
    rule: LabelRule
    masks: str | None = None  # lesion mask folder of the official release
    mask_suffix: str = "_segmentation.png"
    features: str | None = None  # Part 2 dermoscopic features (ISIC 2017)
    groups: Groups | None = None
    duplicates: str | None = None  # CSV of (kept, dropped) image pairs (ISIC 2020)
    optional: bool = False  # read where present (ISIC 2019 test, whose labels came out later)
    select: tuple[str, str] | None = None  # (column, split) for a CSV folder's split column
    metadata: tuple[str, ...] = ()  # further files of the split no reader needs (2019 test metadata)

    def top_names(self) -> tuple[str, ...]:
        """The files and folders directly under the root that hold this split, by their
        official (first) names: what its archives unpack to."""
        groups = self.groups.file if self.groups else None
        paths = (self.images[0], self.labels[0], self.masks, self.features, groups, self.duplicates)
        paths += self.metadata
        return tuple(dict.fromkeys(p.split("/")[0] for p in paths if p))


@dataclass(frozen=True)
class Carving:
    """A split made from the training split: label-stratified, by group when ``grouped``."""

    split: str  # "val" or "test"
    fraction: str  # the data config key holding its share of the training split
    grouped: bool = False
    unless_present: bool = False  # only when the split is not on disk (an optional split left out)


@dataclass(frozen=True)
class Archive:
    """One file the challenge serves."""

    name: str  # file name on the server, e.g. "ISIC-2017_Training_Data.zip"
    year: str  # URL folder: "2016" ... "2020"
    part: str  # images | labels | lesion | dermo | meta
    folder: str | None  # official folder the zip unpacks to; None for a bare CSV
    about: str = ""  # approximate size from the challenge page (shown, never checked)

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.year}/{self.name}"


@dataclass(frozen=True)
class SynthPlan:
    """How ``attnmel data synth`` writes a copy: default image counts per split on disk, the
    ids, and the files beyond images, masks and labels (metadata CSVs, groupings, duplicates).
    Hooks get numpy's ``Generator`` but import nothing; their draws are part of the copy."""

    counts: Mapping[str, int]
    ids: Callable[[str, int, int], list[str]] = lambda split, start, n: [f"ISIC_{i:07d}" for i in range(start, start + n)]
    group_sizes: tuple[int, int] | None = None  # images per lesion/patient, drawn uniformly in [a, b]
    label_rows: Callable[..., list[list[str]]] | None = None  # (split, ids, labels, groups, rng) -> rows
    extra_files: Callable[..., dict[str, list[list[str]]]] | None = None  # (split, ids, labels, groups, rng)
    masks_for: Mapping[str, str] = field(default_factory=dict)  # split -> mask folder outside the release
    duplicates: int = 0  # pairs written where the split lists duplicates


@dataclass(frozen=True)
class Declaration:
    """One dataset: see the module docstring."""

    name: str
    title: str
    splits: Mapping[str, SplitFiles]  # the splits on disk, in order
    carve: tuple[Carving, ...] = ()
    passes: int = 1  # default passes per epoch (the paper: 2 for ISIC 2017, 5 for ISIC 2016)
    normalization: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    archives: tuple[Archive, ...] = ()
    id_suffixes: tuple[str, ...] = ()  # an id may carry these in one file and not in another
    synth: SynthPlan | None = None
    notes: str = ""  # one line for help texts
    # A CSV folder: the declaration made from the user's keys (``bind``); the other keys it reads.
    bind: Callable[[Source], "Declaration"] | None = None
    source_keys: tuple[str, ...] = ()

    def bound(self, source: Source) -> "Declaration":
        """The declaration that reads ``source``'s files (itself for the official layouts)."""
        return self.bind(source) if self.bind is not None else self

    @property
    def parts(self) -> tuple[str, ...]:
        """The archive parts ``data download --parts`` may name, in order."""
        return tuple(dict.fromkeys(a.part for a in self.archives))

    def split_names(self) -> tuple[str, ...]:
        """Splits on disk and carved, in the order train, val, test."""
        have = set(self.splits) | {c.split for c in self.carve}
        return tuple(s for s in SPLITS if s in have)

    def carvings(self, present: Callable[[str], bool]) -> tuple[Carving, ...]:
        """The carvings made: all but those ``unless_present`` whose split's files are there
        (``present(split)``: an optional split on disk was found)."""
        return tuple(c for c in self.carve if not (c.unless_present and present(c.split)))

    def needs(self, splits: Iterable[str], present: Callable[[str], bool]) -> tuple[str, ...]:
        """The splits on disk whose files make ``splits``, in declaration order: a split on disk
        its own files, a carved one all of training's (carving draws from the whole of it).
        The files of each split on disk are its :class:`SplitFiles`; nothing else is read."""
        carved = {c.split for c in self.carvings(present)}
        wanted = {"train" if s in carved else s for s in splits}
        return tuple(s for s in self.splits if s in wanted)

    def archives_of(self, splits: Iterable[str]) -> tuple[Archive, ...]:
        """The archives that unpack to the files ``splits`` are made of (an optional split
        counted as on disk): what a download of those splits alone fetches."""
        on_disk = self.needs(splits, lambda split: True)
        names = {name for split in on_disk for name in self.splits[split].top_names()}
        return tuple(a for a in self.archives if (a.folder or a.name) in names)
