"""Any folder of images with a CSV of labels (``dataset: csv``).

The keys say where things are (relative to the root): ``images`` (default: the root itself),
``labels`` (the CSV), ``id_column`` (default ``image``; an image is ``<id>.jpg``/``.jpeg``/``.png``
or the cell itself when it carries one of those endings), ``label_column`` and ``positive``
(the value meaning melanoma, default ``1``; numbers compare as numbers), optionally
``group_column`` (lesion or patient: no group is put in two splits) and ``split_column``
(``train``/``val``/``test``, also ``training``/``valid``/``validation``/``testing``). Without a
split column, validation and test are carved from all rows, label-stratified and grouped when
a group column is named.
"""

from __future__ import annotations

from dataclasses import replace

from attnmel.data.datasets.base import (
    SPLITS, Carving, Declaration, Groups, MatchLabels, SplitFiles, Source, SynthPlan,
)  # fmt: skip

__all__ = ["DECLARATION", "SOURCE_KEYS", "SYNTH_KEYS"]

# The data keys this declaration reads (only it may be given them).
SOURCE_KEYS = ("images", "labels", "id_column", "label_column", "positive", "group_column", "split_column")
# What `attnmel data synth --dataset csv` writes: the keys that read it back.
SYNTH_KEYS = {"images": "images", "labels": "labels.csv", "id_column": "image", "label_column": "diagnosis",
              "positive": "melanoma", "group_column": "lesion_id"}  # fmt: skip
SYNTH_SPLIT_COLUMN = "split"


def _bind(source: Source) -> Declaration:
    rule = MatchLabels(source.id_column or "image", source.label_column or "", source.positive or "1")
    groups = Groups(source.group_column, source.group_column, required=True) if source.group_column else None
    files = SplitFiles(images=(source.images or ".",), labels=(source.labels or "",), rule=rule, groups=groups)
    if source.split_column:
        splits = {s: replace(files, select=(source.split_column, s)) for s in SPLITS}
        return replace(DECLARATION, splits=splits, carve=(), bind=None)
    grouped = groups is not None
    carve = (Carving("val", "val_fraction", grouped=grouped), Carving("test", "test_fraction", grouped=grouped))
    return replace(DECLARATION, splits={"train": files}, carve=carve, bind=None)


def _label_rows(split: str, ids: list[str], labels, groups, rng) -> list[list[str]]:
    k = SYNTH_KEYS
    rows = [[k["id_column"], k["label_column"], k["group_column"], SYNTH_SPLIT_COLUMN]]
    for image, m, g in zip(ids, labels, groups):
        other = str(rng.choice(["nevus", "seborrheic keratosis"]))
        rows.append([image, k["positive"] if m else other, g, split])
    return rows


DECLARATION = Declaration(
    name="csv",
    title="a folder with a CSV",
    splits={"train": SplitFiles(images=(".",), labels=("",), rule=MatchLabels("image", "", "1"))},
    passes=1,
    synth=SynthPlan(
        counts={"train": 48, "val": 12, "test": 12}, group_sizes=(1, 3), label_rows=_label_rows,
        ids=lambda split, start, n: [f"IMG_{i:05d}" for i in range(start, start + n)],
    ),  # fmt: skip
    notes="images + one CSV; splits from a column or carved (grouped by a column)",
    bind=_bind,
    source_keys=SOURCE_KEYS,
)
