"""ISIC 2016 Part 3 (Gutman et al., 2016): the paper's second dataset.

``ISBI2016_ISIC_Part3_{Training,Test}_Data/ISIC_*.jpg``, two ground-truth CSVs without a
header (training: benign/malignant, test: 0.0/1.0) and lesion masks
``ISBI2016_ISIC_Part1_{Training,Test}_GroundTruth/ISIC_*_Segmentation.png``: 900 / 379 images.
There is no validation split: one is carved from training, label-stratified
(``data.val_fraction``, ``data.val_seed``).
"""

from __future__ import annotations

from typing import Any

from attnmel.data.datasets.base import Archive, Carving, ColumnLabels, Declaration, SplitFiles, SynthPlan

__all__ = ["DECLARATION"]

# The training CSV uses words, the test CSV numbers; either is read in both.
_VALUES = {"benign": 0, "malignant": 1, "0": 0, "0.0": 0, "1": 1, "1.0": 1}
# No header in the official files; a re-hosted copy may add one, whose first cell is one of these.
_HEADER_IDS = ("image_id", "isic_id", "name")
WORDS = ColumnLabels(None, None, _VALUES, "0/1 (or benign/malignant)", write=("benign", "malignant"), header_ids=_HEADER_IDS)
NUMBERS = ColumnLabels(None, None, _VALUES, "0/1 (or benign/malignant)", write=("0.0", "1.0"), header_ids=_HEADER_IDS)


def _split(official: str, rule: ColumnLabels) -> SplitFiles:
    return SplitFiles(
        images=(f"ISBI2016_ISIC_Part3_{official}_Data",),
        labels=(f"ISBI2016_ISIC_Part3_{official}_GroundTruth.csv",),
        rule=rule,
        masks=f"ISBI2016_ISIC_Part1_{official}_GroundTruth",
        mask_suffix="_Segmentation.png",
    )


SPLIT_FILES = {"train": _split("Training", WORDS), "test": _split("Test", NUMBERS)}


def _label_rows(split: str, ids: list[str], labels: Any, groups: Any, rng: Any) -> list[list[str]]:
    rule = SPLIT_FILES[split].rule
    return [[i, *rule.cells(int(m), rng)] for i, m in zip(ids, labels)]


def _archives() -> tuple[Archive, ...]:
    out = []
    for split, files in SPLIT_FILES.items():
        out += [
            Archive(f"{files.images[0]}.zip", "2016", "images", files.images[0]),
            Archive(files.labels[0], "2016", "labels", None),
            Archive(f"{files.masks}.zip", "2016", "lesion", files.masks),
        ]
    return tuple(out)


DECLARATION = Declaration(
    name="isic2016",
    title="ISIC 2016 Part 3",
    splits=SPLIT_FILES,
    carve=(Carving("val", "val_fraction"),),
    passes=5,
    normalization=((0.7012, 0.5517, 0.4875), (0.0942, 0.1331, 0.1521)),  # the official code's constants
    archives=_archives(),
    synth=SynthPlan(counts={"train": 64, "test": 24}, label_rows=_label_rows),
    notes="900/379 images; validation carved from training, stratified",
)
