"""ISIC 2017 Part 3 (Codella et al., ISBI 2018): the paper's main dataset.

``ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_*.jpg`` (the folders also hold the Part 2
superpixel maps and a metadata CSV), ``…_Part3_GroundTruth.csv`` (``image_id, melanoma,
seborrheic_keratosis``, 0.0/1.0), lesion masks ``…_Part1_GroundTruth/ISIC_*_segmentation.png``
and the dermoscopic features ``…_Part2_GroundTruth/ISIC_*_features.json``: 2,000 / 150 / 600
images, 374 / 30 / 117 melanomas, all splits official.
"""

from __future__ import annotations

from typing import Any

from attnmel.data.datasets.base import Archive, ColumnLabels, Declaration, SplitFiles, SynthPlan

__all__ = ["DECLARATION"]

NUMBERS = {"0": 0, "0.0": 0, "1": 1, "1.0": 1}
RULE = ColumnLabels("image_id", "melanoma", NUMBERS, "0/1", extra=("seborrheic_keratosis",))
_OFFICIAL = {"train": "Training", "val": "Validation", "test": "Test_v2"}


def _split(official: str) -> SplitFiles:
    prefix = f"ISIC-2017_{official}"
    return SplitFiles(
        images=(f"{prefix}_Data",),
        labels=(f"{prefix}_Part3_GroundTruth.csv",),
        rule=RULE,
        masks=f"{prefix}_Part1_GroundTruth",
        features=f"{prefix}_Part2_GroundTruth",
    )


SPLIT_FILES = {split: _split(official) for split, official in _OFFICIAL.items()}


def _label_rows(split: str, ids: list[str], labels: Any, groups: Any, rng: Any) -> list[list[str]]:
    sk = (labels == 0) & (rng.random(len(ids)) < 0.2)  # seborrheic keratosis among the others
    return [RULE.header_row()] + [[i, f"{float(m):.1f}", f"{float(k):.1f}"] for i, m, k in zip(ids, labels, sk)]


def _extra_files(split: str, ids: list[str], labels: Any, groups: Any, rng: Any) -> dict[str, list[list[str]]]:
    folder = SPLIT_FILES[split].images[0]
    meta = [["image_id", "age_approximate", "sex"]]
    meta += [[i, str(int(rng.integers(3, 17)) * 5), str(rng.choice(["male", "female"]))] for i in ids]
    return {f"{folder}/{folder}_metadata.csv": meta}


def _archives() -> tuple[Archive, ...]:
    out = []
    for split, files in SPLIT_FILES.items():
        out += [
            Archive(f"{files.images[0]}.zip", "2017", "images", files.images[0]),
            Archive(files.labels[0], "2017", "labels", None),
            Archive(f"{files.masks}.zip", "2017", "lesion", files.masks),
            Archive(f"{files.features}.zip", "2017", "dermo", files.features),
        ]
    return tuple(out)


DECLARATION = Declaration(
    name="isic2017",
    title="ISIC 2017 Part 3",
    splits=SPLIT_FILES,
    passes=2,
    normalization=((0.6820, 0.5312, 0.4736), (0.0840, 0.1140, 0.1282)),  # the official code's constants
    archives=_archives(),
    synth=SynthPlan(counts={"train": 48, "val": 16, "test": 24}, label_rows=_label_rows, extra_files=_extra_files),
    notes="2,000/150/600 images, official splits, lesion masks and Part 2 features",
)
