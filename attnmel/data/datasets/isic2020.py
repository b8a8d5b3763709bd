"""ISIC 2020 (SIIM-ISIC; Rotemberg et al., Sci. Data 2021).

``ISIC_2020_Training_JPEG/ISIC_*.jpg`` (the archive unpacks to ``train/``; either folder is
read) and ``ISIC_2020_Training_GroundTruth_v2.csv`` or ``ISIC_2020_Training_GroundTruth.csv``
(``image_name, patient_id, [lesion_id,] sex, age_approx, anatom_site_general_challenge,
diagnosis, benign_malignant, target``; melanoma is ``target`` 1): 33,126 images of 2,056
patients, 584 melanomas (1.8 %). ``ISIC_2020_Training_Duplicates.csv`` lists pairs of images
of one lesion (``image_name_1, image_name_2``): the second of each pair is dropped. The test
set has no public labels, so validation and test are carved from training **by patient** (no
patient in two splits), stratified by melanoma.
"""

from __future__ import annotations

from attnmel.data.datasets.base import Archive, Carving, ColumnLabels, Declaration, Groups, SplitFiles, SynthPlan

__all__ = ["DECLARATION"]

RULE = ColumnLabels("image_name", "target", {"0": 0, "1": 1, "0.0": 0, "1.0": 1}, "0/1", write=("0", "1"))
LABELS = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")
DUPLICATES = "ISIC_2020_Training_Duplicates.csv"
HEADER = ["image_name", "patient_id", "lesion_id", "sex", "age_approx", "anatom_site_general_challenge",
          "diagnosis", "benign_malignant", "target"]  # fmt: skip

SPLIT_FILES = {
    "train": SplitFiles(
        images=("ISIC_2020_Training_JPEG", "train"), labels=LABELS, rule=RULE,
        groups=Groups("patient_id", "patient_id", required=True), duplicates=DUPLICATES,
    ),
}  # fmt: skip


def _label_rows(split: str, ids: list[str], labels, groups, rng) -> list[list[str]]:
    rows = [HEADER]
    for k, (i, m, g) in enumerate(zip(ids, labels, groups)):
        diagnosis = "melanoma" if m else str(rng.choice(["nevus", "unknown", "seborrheic keratosis"]))
        rows.append([
            i, g, f"IL_{k:07d}", str(rng.choice(["male", "female"])), str(int(rng.integers(4, 18)) * 5),
            str(rng.choice(["torso", "head/neck", "lower extremity"])), diagnosis,
            "malignant" if m else "benign", RULE.write[int(m)],
        ])  # fmt: skip
    return rows


DECLARATION = Declaration(
    name="isic2020",
    title="ISIC 2020 (SIIM-ISIC)",
    splits=SPLIT_FILES,
    carve=(Carving("val", "val_fraction", grouped=True), Carving("test", "test_fraction", grouped=True)),
    passes=1,
    archives=(
        Archive("ISIC_2020_Training_JPEG.zip", "2020", "images", "ISIC_2020_Training_JPEG", "23 GB"),
        Archive("ISIC_2020_Training_GroundTruth_v2.csv", "2020", "labels", None),
        Archive(DUPLICATES, "2020", "labels", None),
    ),
    synth=SynthPlan(
        counts={"train": 120}, ids=lambda split, start, n: [f"ISIC_{9000000 + i:07d}" for i in range(start, start + n)],
        group_sizes=(2, 6), label_rows=_label_rows, duplicates=3,
    ),  # fmt: skip
    notes="33,126 images, 584 melanomas; validation and test carved by patient_id; duplicates dropped",
)
