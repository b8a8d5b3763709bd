"""The declarations: each synthetic copy has the exact official names and reads back without a
problem; each collection's own rules (one-hot labels, lesion groupings, `_downsampled` ids,
patients and duplicates, a CSV folder with and without a split column); torch-free."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attnmel.data.datasets import DATASETS, DECLARATIONS, declaration
from attnmel.data.datasets.csvfolder import SYNTH_KEYS
from attnmel.data.layout import check_layout, load_splits
from attnmel.data.synth import write_synthetic

REPO = Path(__file__).resolve().parents[3]
HAM_MASKS = "HAM10000_segmentations_lesion_tschandl"


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """One small synthetic copy of every declared dataset (read-only)."""
    roots = {}
    for name in DATASETS:
        roots[name] = tmp_path_factory.mktemp(name)
        write_synthetic(name, roots[name], size=32, seed=7)
    return roots


def _keys(name: str) -> dict:
    return dict(SYNTH_KEYS) if name == "csv" else ({"masks": HAM_MASKS} if name == "isic2018" else {})


@pytest.mark.parametrize("name", [n for n in DATASETS if n != "csv"])
def test_every_declared_file_has_its_official_name(synth, name):
    root, decl = synth[name], declaration(name)
    for split, files in decl.splits.items():
        assert (root / files.images[0]).is_dir(), files.images[0]
        assert (root / files.labels[0]).is_file(), files.labels[0]
        for folder in (files.masks, files.features):
            if folder:
                assert (root / folder).is_dir(), folder
        for extra in (files.groups.file if files.groups else None, files.duplicates):
            if extra:
                assert (root / extra).is_file(), extra
        if files.rule.id_column is not None:  # the columns the rule reads head the file's columns
            assert set(files.rule.required()) <= set(_rows(root / files.labels[0])[0])
    report, problems = check_layout(name, root, **_keys(name))
    assert problems == [] and report["notes"] == []
    assert all(report["splits"][s]["images"] > 0 for s in ("train", "val", "test"))


def test_isic2018_task3_layout_one_hot_and_masks_from_the_ham10000_release(synth):
    root = synth["isic2018"]
    for official in ("Training", "Validation", "Test"):
        gt = root / f"ISIC2018_Task3_{official}_GroundTruth" / f"ISIC2018_Task3_{official}_GroundTruth.csv"
        rows = _rows(gt)
        assert rows[0] == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
        assert all(sum(float(v) for v in r[1:]) == 1.0 for r in rows[1:])
        assert (root / f"ISIC2018_Task3_{official}_Input" / f"{rows[1][0]}.jpg").is_file()
    assert _rows(root / "ISIC2018_Task3_Training_LesionGroupings.csv")[0][:2] == ["image", "lesion_id"]
    without = load_splits("isic2018", root)
    assert not any(s.lesion for part in without.values() for s in part)  # Task 3 ships no masks
    with_masks = load_splits("isic2018", root, masks=HAM_MASKS)
    assert all(s.lesion.name == f"{s.image_id}_segmentation.png" for s in with_masks["train"])
    assert not any(s.lesion for s in with_masks["val"] + with_masks["test"])  # none exist for them
    mel = {r[0]: int(float(r[1])) for r in _rows(root / "ISIC2018_Task3_Training_GroundTruth/"
                                                  "ISIC2018_Task3_Training_GroundTruth.csv")[1:]}  # fmt: skip
    assert {s.image_id: s.label for s in with_masks["train"]} == mel  # melanoma = the MEL column
    groups = {r[0]: r[1] for r in _rows(root / "ISIC2018_Task3_Training_LesionGroupings.csv")[1:]}
    assert all(s.group == groups[s.image_id] for s in with_masks["train"])


def test_isic2019_downsampled_ids_are_resolved_either_way(synth, tmp_path):
    root = Path(shutil.copytree(synth["isic2019"], tmp_path / "d"))
    gt = _rows(root / "ISIC_2019_Training_GroundTruth.csv")
    assert gt[0] == ["image", "MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    shrunk = [r[0] for r in gt[1:] if r[0].endswith("_downsampled")]
    assert shrunk, "the synthetic copy should have _downsampled ids, like the release"
    # a re-hosted copy whose files lost the suffix, and a CSV row that lost it
    folder = root / "ISIC_2019_Training_Input"
    (folder / f"{shrunk[0]}.jpg").rename(folder / f"{shrunk[0].removesuffix('_downsampled')}.jpg")
    text = (root / "ISIC_2019_Training_GroundTruth.csv").read_text().replace(f"{shrunk[1]},", f"{shrunk[1].removesuffix('_downsampled')},")
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text(text)
    report, problems = check_layout("isic2019", root, decode=False)
    assert problems == [] and report["notes"] == []
    count = lambda splits: sum(len(part) for part in splits.values())  # noqa: E731
    assert count(load_splits("isic2019", root)) == count(load_splits("isic2019", synth["isic2019"]))


def test_isic2019_without_its_test_files_carves_a_test_split_by_lesion(synth, tmp_path):
    root = Path(shutil.copytree(synth["isic2019"], tmp_path / "d"))
    shutil.rmtree(root / "ISIC_2019_Test_Input")
    (root / "ISIC_2019_Test_GroundTruth.csv").unlink()
    report, problems = check_layout("isic2019", root, decode=False)
    assert problems == []
    assert [c["split"] for c in report["carved"]] == ["val", "test"]
    assert all(c["grouped_by"] == "lesion_id" for c in report["carved"])
    (root / "ISIC_2019_Training_Metadata.csv").unlink()
    _, problems = check_layout("isic2019", root, decode=False)
    assert len(problems) == 1 and "ISIC_2019_Training_Metadata.csv" in problems[0] and "lesion_id" in problems[0]


def test_isic2020_duplicates_dropped_and_both_folder_and_csv_names_read(synth, tmp_path):
    root = Path(shutil.copytree(synth["isic2020"], tmp_path / "d"))
    pairs = _rows(root / "ISIC_2020_Training_Duplicates.csv")
    assert pairs[0] == ["image_name_1", "image_name_2"] and len(pairs) > 1
    header = _rows(root / "ISIC_2020_Training_GroundTruth_v2.csv")[0]
    assert header[:3] == ["image_name", "patient_id", "lesion_id"] and header[-1] == "target"
    splits = load_splits("isic2020", root)
    kept = {s.image_id for part in splits.values() for s in part}
    assert all(a in kept and b not in kept for a, b in pairs[1:])
    report, _ = check_layout("isic2020", root, decode=False)
    assert report["duplicates_dropped"] == len(pairs) - 1
    # the common `train/` folder and the first release's CSV name are read the same way
    (root / "ISIC_2020_Training_JPEG").rename(root / "train")
    (root / "ISIC_2020_Training_GroundTruth_v2.csv").rename(root / "ISIC_2020_Training_GroundTruth.csv")
    again = load_splits("isic2020", root)
    assert {k: [s.image_id for s in v] for k, v in again.items()} == {k: [s.image_id for s in v] for k, v in splits.items()}
    patients = {s.group for s in again["train"]}
    assert patients.isdisjoint({s.group for s in again["val"]}) and patients.isdisjoint({s.group for s in again["test"]})


def test_csv_folder_with_and_without_a_split_column(synth):
    root = synth["csv"]
    given = load_splits("csv", root, **SYNTH_KEYS, split_column="split")
    rows = {r[0]: r for r in _rows(root / "labels.csv")[1:]}
    for split, samples in given.items():
        assert samples and all(rows[s.image_id][3] == split for s in samples)
        assert all(s.label == (rows[s.image_id][1] == "melanoma") for s in samples)
    carved = load_splits("csv", root, **SYNTH_KEYS)
    assert sum(map(len, carved.values())) == sum(map(len, given.values()))
    lesions = {split: {s.group for s in part} for split, part in carved.items()}
    assert lesions["train"].isdisjoint(lesions["val"]) and lesions["train"].isdisjoint(lesions["test"])
    assert lesions["val"].isdisjoint(lesions["test"])
    no_groups = {k: v for k, v in SYNTH_KEYS.items() if k != "group_column"}
    report, problems = check_layout("csv", root, decode=False, **no_groups)
    assert problems == [] and report["grouped_by"] is None and all(c["grouped_by"] is None for c in report["carved"])


def test_csv_positive_compares_numbers_as_numbers(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    lines = ["name,y"]
    for i, y in enumerate(["1.0", "0", "1", "0.0", "2"] * 4):
        Image.new("RGB", (20, 16), (i * 10, 50, 50)).save(tmp_path / "img" / f"p{i}.png")
        lines.append(f"p{i}.png,{y}")
    (tmp_path / "y.csv").write_text("\n".join(lines) + "\n")
    splits = load_splits("csv", tmp_path, images="img", labels="y.csv", id_column="name", label_column="y", positive="1")
    labels = {s.image_id: s.label for part in splits.values() for s in part}
    assert labels == {f"p{i}.png": int(y in ("1.0", "1")) for i, y in enumerate(["1.0", "0", "1", "0.0", "2"] * 4)}


def test_every_dataset_has_one_declaration_and_the_readers_know_no_year():
    assert set(DECLARATIONS) == set(DATASETS) == {"isic2016", "isic2017", "isic2018", "isic2019", "isic2020", "csv"}
    generic = [REPO / "attnmel" / "data" / n for n in ("layout.py", "labels.py", "carving.py", "bundle.py", "synth.py",
                                                       "download.py", "preprocess.py")]  # fmt: skip
    for path in generic:
        text = path.read_text()
        assert not re.search(r"""dataset\s*(==|!=|in\b)|(==|!=)\s*["']isic20""", text), path.name


def test_the_declarations_and_the_config_import_without_torch_or_numpy():
    code = "import sys, attnmel.config, attnmel.data.datasets; assert not {'torch', 'numpy'} & set(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
