"""ISIC 2019 (Tschandl et al., 2018; Codella et al., 2017; Combalia et al., 2019).

``ISIC_2019_Training_Input/ISIC_*.jpg``, ``ISIC_2019_Training_GroundTruth.csv`` (``image, MEL,
NV, BCC, AK, BKL, DF, VASC, SCC, UNK``, one-hot; melanoma is MEL) and
``ISIC_2019_Training_Metadata.csv`` (``image, age_approx, anatom_site_general, lesion_id,
sex``): 25,331 images, 4,522 melanomas. Some ids end in ``_downsampled`` (the image was
shrunk for the release); an id is matched with or without that ending. The test images
``ISIC_2019_Test_Input/`` and ``ISIC_2019_Test_GroundTruth.csv`` (8,238, labels public now)
are read where present; without them a test split is carved like validation. There is no
official validation split: it is carved from training, label-stratified and grouped by
``lesion_id`` (an image without one is its own lesion), so no lesion is in two splits.
"""

from __future__ import annotations

from attnmel.data.datasets.base import Archive, Carving, Declaration, Groups, OneHotLabels, SplitFiles, SynthPlan

__all__ = ["DECLARATION", "CLASSES"]

CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
RULE = OneHotLabels("image", CLASSES, positive="MEL")
METADATA = "ISIC_2019_Training_Metadata.csv"
TEST_METADATA = "ISIC_2019_Test_Metadata.csv"
DOWNSAMPLED = "_downsampled"

SPLIT_FILES = {
    "train": SplitFiles(
        images=("ISIC_2019_Training_Input",), labels=("ISIC_2019_Training_GroundTruth.csv",), rule=RULE,
        groups=Groups("lesion_id", "lesion_id", file=METADATA, id_column="image", required=True),
    ),
    "test": SplitFiles(
        images=("ISIC_2019_Test_Input",),
        labels=("ISIC_2019_Test_GroundTruth.csv",),
        rule=RULE,
        optional=True,
        metadata=(TEST_METADATA,),
    ),
}  # fmt: skip


def _ids(split: str, start: int, n: int) -> list[str]:
    """Like the release: some ids carry ``_downsampled`` in the CSVs and in the file name."""
    # numbered past the synthetic ISIC 2016-2018 copies, so a synthetic external set never overlaps
    return [f"ISIC_{50000 + i:07d}{DOWNSAMPLED if i % 4 == 1 else ''}" for i in range(start, start + n)]


def _extra_files(split: str, ids: list[str], labels, groups, rng) -> dict[str, list[list[str]]]:
    name = METADATA if split == "train" else TEST_METADATA
    header = ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    rows = [header if split == "train" else [c for c in header if c != "lesion_id"]]
    for i, g in zip(ids, groups):
        site, sex = str(rng.choice(["anterior torso", "head/neck", "lower extremity"])), str(rng.choice(["male", "female"]))
        age = str(int(rng.integers(3, 17)) * 5)
        rows.append([i, age, site, g, sex] if split == "train" else [i, age, site, sex])
    return {name: rows}


DECLARATION = Declaration(
    name="isic2019",
    title="ISIC 2019",
    splits=SPLIT_FILES,
    carve=(Carving("val", "val_fraction", grouped=True), Carving("test", "test_fraction", grouped=True, unless_present=True)),
    passes=1,
    archives=(
        Archive("ISIC_2019_Training_Input.zip", "2019", "images", "ISIC_2019_Training_Input", "9.1 GB"),
        Archive("ISIC_2019_Training_GroundTruth.csv", "2019", "labels", None),
        Archive(METADATA, "2019", "meta", None),
        Archive("ISIC_2019_Test_Input.zip", "2019", "images", "ISIC_2019_Test_Input", "3.6 GB"),
        Archive("ISIC_2019_Test_GroundTruth.csv", "2019", "labels", None),
        Archive(TEST_METADATA, "2019", "meta", None),
    ),
    id_suffixes=(DOWNSAMPLED,),
    synth=SynthPlan(counts={"train": 60, "test": 16}, ids=_ids, group_sizes=(1, 3), extra_files=_extra_files),
    notes="25,331 training images; validation carved by lesion_id; test read where present",
)
