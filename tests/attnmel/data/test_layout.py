"""Official layouts: parsing both datasets, the carved ISIC 2016 validation split, every bad input."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnmel.data.layout import LAYOUTS, check_layout, load_splits, stratified_subset
from attnmel.errors import UserError

TRAIN17 = LAYOUTS["isic2017"]["train"]
TRAIN16 = LAYOUTS["isic2016"]["train"]


def _csv_rows(path: Path, header: bool) -> list[list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[1:] if header else rows


def test_isic2017_splits_follow_the_csvs(synth2017_ro):
    splits = load_splits("isic2017", synth2017_ro)
    for name, lay in LAYOUTS["isic2017"].items():
        rows = _csv_rows(synth2017_ro / lay.labels, header=True)
        assert [s.image_id for s in splits[name]] == [r[0] for r in rows]  # CSV order, nothing else
        assert [s.label for s in splits[name]] == [int(float(r[1])) for r in rows]
        for s in splits[name]:
            assert s.image == synth2017_ro / lay.images / f"{s.image_id}.jpg"
            assert s.lesion == synth2017_ro / lay.masks / f"{s.image_id}_segmentation.png"
            assert s.superpixels == synth2017_ro / lay.images / f"{s.image_id}_superpixels.png"
            assert s.features == synth2017_ro / lay.features / f"{s.image_id}_features.json"


def test_images_are_chosen_by_csv_ids_not_by_globbing(synth2017):
    folder = synth2017 / TRAIN17.images
    before = load_splits("isic2017", synth2017)["train"]
    Image.new("RGB", (8, 8)).save(folder / "ISIC_9999999.jpg")  # present on disk, absent from the CSV
    after = load_splits("isic2017", synth2017)["train"]
    assert after == before
    assert not any(s.image.name.endswith("_superpixels.png") for s in after)


def test_isic2016_labels_and_carved_validation(synth2016_ro):
    rows = _csv_rows(synth2016_ro / TRAIN16.labels, header=False)
    words = {r[0]: r[1] for r in rows}
    splits = load_splits("isic2016", synth2016_ro, val_fraction=0.25, val_seed=3)
    train, val = splits["train"], splits["val"]
    assert {s.image_id for s in train}.isdisjoint(s.image_id for s in val)
    assert sorted(s.image_id for s in train + val) == sorted(words)  # nothing lost, nothing added
    for s in train + val:
        assert s.label == (1 if words[s.image_id] == "malignant" else 0)
        assert s.lesion.name == f"{s.image_id}_Segmentation.png" and s.features is None
    assert len(val) == round(0.25 * len(rows))
    # stratified: the melanoma share of val is the share of the whole training CSV, to one image
    n_mel = sum(w == "malignant" for w in words.values())
    assert abs(sum(s.label for s in val) - n_mel * len(val) / len(rows)) <= 1
    test_rows = _csv_rows(synth2016_ro / LAYOUTS["isic2016"]["test"].labels, header=False)
    assert [s.label for s in splits["test"]] == [int(float(r[1])) for r in test_rows]


def test_isic2016_validation_split_is_fixed_by_its_seed(synth2016_ro):
    ids = lambda seed: [s.image_id for s in load_splits("isic2016", synth2016_ro, val_seed=seed)["val"]]  # noqa: E731
    assert ids(0) == ids(0)
    assert any(ids(0) != ids(seed) for seed in (1, 2, 3))


@pytest.mark.parametrize("total", [1, 2, 5, 13, 40])
def test_stratified_subset_is_exact_and_keeps_both_classes(total):
    labels = [1] * 9 + [0] * 31
    keep = stratified_subset(labels, total, seed=0)
    assert len(keep) == total and len(set(keep.tolist())) == total
    picked = [labels[i] for i in keep]
    if total >= 2:
        assert set(picked) == {0, 1}
    np.testing.assert_array_equal(keep, stratified_subset(labels, total, seed=0))


def test_check_layout_report_on_a_clean_dataset(synth2017_ro):
    report, problems = check_layout("isic2017", synth2017_ro)
    assert problems == []
    splits = load_splits("isic2017", synth2017_ro)
    for name, samples in splits.items():
        r = report["splits"][name]
        assert r["images"] == len(samples)
        assert r["melanoma"] == sum(s.label for s in samples)
        assert r["melanoma"] + r["other"] == r["images"]
        assert r["roi"] == {"lesion": len(samples), "dermo": len(samples)}


# --- every bad input: (mutation, text expected in the problem line) ---------------------------


def _first_id(root: Path) -> str:
    return _csv_rows(root / TRAIN17.labels, header=True)[0][0]


def _rm_image_folder(root: Path) -> str:
    for p in (root / TRAIN17.images).iterdir():
        p.unlink()
    (root / TRAIN17.images).rmdir()
    return TRAIN17.images


def _rm_csv(root: Path) -> str:
    (root / TRAIN17.labels).unlink()
    return TRAIN17.labels


def _rm_image(root: Path) -> str:
    image_id = _first_id(root)
    (root / TRAIN17.images / f"{image_id}.jpg").unlink()
    return image_id


def _truncate_image(root: Path) -> str:
    path = root / TRAIN17.images / f"{_first_id(root)}.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path.name


def _garbage_image(root: Path) -> str:
    path = root / TRAIN17.images / f"{_first_id(root)}.jpg"
    path.write_bytes(b"this is not a jpeg")
    return path.name


def _resize_mask(root: Path) -> str:
    path = root / TRAIN17.masks / f"{_first_id(root)}_segmentation.png"
    Image.open(path).resize((10, 7)).save(path)
    return path.name


def _duplicate_id(root: Path) -> str:
    path = root / TRAIN17.labels
    rows = path.read_text().splitlines()
    path.write_text("\n".join(rows + [rows[1]]) + "\n")
    return rows[1].split(",")[0]


def _bad_label(root: Path) -> str:
    path = root / TRAIN17.labels
    rows = path.read_text().splitlines()
    image_id = rows[2].split(",")[0]
    rows[2] = f"{image_id},0.5,0.0"
    path.write_text("\n".join(rows) + "\n")
    return "0.5"


def _id_in_two_splits(root: Path) -> str:
    image_id = _first_id(root)
    val = LAYOUTS["isic2017"]["val"]
    path = root / val.labels
    path.write_text(path.read_text() + f"{image_id},0.0,0.0\n")
    (root / val.images / f"{image_id}.jpg").write_bytes((root / TRAIN17.images / f"{image_id}.jpg").read_bytes())
    return f"{image_id} appears in both"


BAD_INPUTS: dict[str, tuple[Callable[[Path], str], bool]] = {
    # name: (mutation returning a text the problem must contain, found without decoding)
    "missing image folder": (_rm_image_folder, True),
    "missing csv": (_rm_csv, True),
    "id without image": (_rm_image, True),
    "truncated image": (_truncate_image, False),
    "unreadable image": (_garbage_image, True),
    "mask size differs": (_resize_mask, True),
    "duplicate ids": (_duplicate_id, True),
    "label not 0/1": (_bad_label, True),
    "id in two splits": (_id_in_two_splits, True),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_check_layout_reports_each_bad_input(synth2017, case):
    mutate, found_by_headers = BAD_INPUTS[case]
    needle = mutate(synth2017)
    _, problems = check_layout("isic2017", synth2017, decode=True)
    assert len(problems) == 1, problems
    assert needle in problems[0]
    assert "\n" not in problems[0]
    _, header_problems = check_layout("isic2017", synth2017, decode=False)
    assert bool(header_problems) == found_by_headers  # truncation needs a full decode


def test_load_splits_raises_the_first_problem_as_one_line(synth2017):
    _rm_image(synth2017)
    _duplicate_id(synth2017)
    with pytest.raises(UserError) as e:
        load_splits("isic2017", synth2017)
    assert "\n" not in str(e.value) and "1 more" in str(e.value)


def test_isic2016_bad_label_word(synth2016):
    path = synth2016 / TRAIN16.labels
    rows = path.read_text().splitlines()
    rows[0] = rows[0].split(",")[0] + ",maybe"
    path.write_text("\n".join(rows) + "\n")
    _, problems = check_layout("isic2016", synth2016)
    assert len(problems) == 1 and "'maybe'" in problems[0]


def test_missing_root_and_unknown_dataset(tmp_path):
    _, problems = check_layout("isic2017", tmp_path / "nowhere")
    assert problems and "not found" in problems[0]
    with pytest.raises(UserError, match="isic2016, isic2017"):
        load_splits("isic2021", tmp_path)
