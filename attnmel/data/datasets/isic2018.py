"""ISIC 2018 Task 3 (HAM10000; Tschandl et al., Sci. Data 2018; Codella et al., 2019).

``ISIC2018_Task3_{Training,Validation,Test}_Input/ISIC_*.jpg`` and
``ISIC2018_Task3_{…}_GroundTruth/ISIC2018_Task3_{…}_GroundTruth.csv`` (``image, MEL, NV, BCC,
AKIEC, BKL, DF, VASC``, one-hot floats; melanoma is MEL): 10,015 / 193 / 1,512 images, all
splits official (the validation and test labels are public now).
``ISIC2018_Task3_Training_LesionGroupings.csv`` (``image, lesion_id, …``) names each training
image's lesion where present. Task 3 ships no lesion masks: those of the training images are
the HAM10000 segmentation release (``ISIC_*_segmentation.png``), read when ``data.masks``
points at it; validation and test have none, so Table 3 has nothing to score there.
"""

from __future__ import annotations

from attnmel.data.datasets.base import Archive, Declaration, Groups, OneHotLabels, SplitFiles, SynthPlan

__all__ = ["DECLARATION", "CLASSES"]

CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
RULE = OneHotLabels("image", CLASSES, positive="MEL")
GROUPINGS = "ISIC2018_Task3_Training_LesionGroupings.csv"
# The HAM10000 segmentation release's folder name (synthetic copies write it beside the release).
HAM10000_MASKS = "HAM10000_segmentations_lesion_tschandl"
_OFFICIAL = {"train": "Training", "val": "Validation", "test": "Test"}


def _split(split: str) -> SplitFiles:
    prefix = f"ISIC2018_Task3_{_OFFICIAL[split]}"
    groups = Groups("lesion_id", "lesion_id", file=GROUPINGS, id_column="image") if split == "train" else None
    return SplitFiles(
        images=(f"{prefix}_Input",), labels=(f"{prefix}_GroundTruth/{prefix}_GroundTruth.csv",), rule=RULE, groups=groups
    )


SPLIT_FILES = {split: _split(split) for split in _OFFICIAL}


def _extra_files(split: str, ids: list[str], labels, groups, rng) -> dict[str, list[list[str]]]:
    if split != "train":
        return {}
    rows = [["image", "lesion_id", "diagnosis_confirm_type"]]
    rows += [[i, g, str(rng.choice(["histopathology", "follow_up", "consensus"]))] for i, g in zip(ids, groups)]
    return {GROUPINGS: rows}


def _archives() -> tuple[Archive, ...]:
    out = []
    about = {"train": "2.6 GB"}
    for split, official in _OFFICIAL.items():
        prefix = f"ISIC2018_Task3_{official}"
        out += [
            Archive(f"{prefix}_Input.zip", "2018", "images", f"{prefix}_Input", about.get(split, "")),
            Archive(f"{prefix}_GroundTruth.zip", "2018", "labels", f"{prefix}_GroundTruth"),
        ]
    out.append(Archive(GROUPINGS, "2018", "meta", None))
    return tuple(out)


DECLARATION = Declaration(
    name="isic2018",
    title="ISIC 2018 Task 3 (HAM10000)",
    splits=SPLIT_FILES,
    passes=1,
    archives=_archives(),
    synth=SynthPlan(
        counts={"train": 40, "val": 12, "test": 16}, group_sizes=(1, 3), extra_files=_extra_files,
        ids=lambda split, start, n: [f"ISIC_{24306 + i:07d}" for i in range(start, start + n)],  # HAM10000's range
        masks_for={"train": HAM10000_MASKS},
    ),  # fmt: skip
    notes="10,015/193/1,512 images, official splits; training masks from the HAM10000 release via data.masks",
)
