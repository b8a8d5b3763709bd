"""Ground-truth CSVs read by their rules: every problem is one line naming the file (and the
line of a row); images present but not listed are a note, not an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attnmel.data.datasets.csvfolder import SYNTH_KEYS
from attnmel.data.layout import check_layout
from attnmel.data.synth import write_synthetic

GT19 = "ISIC_2019_Training_GroundTruth.csv"


@pytest.fixture(scope="module")
def synth19_ro(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("isic2019")
    write_synthetic("isic2019", root, n_train=30, n_test=8, size=24, seed=2)
    return root


@pytest.fixture
def synth19(synth19_ro, tmp_path) -> Path:
    return Path(shutil.copytree(synth19_ro, tmp_path / "isic2019"))


def _edit(path: Path, line: int, edit) -> str:
    rows = path.read_text().splitlines()
    rows[line - 1] = edit(rows[line - 1])
    path.write_text("\n".join(rows) + "\n")
    return rows[line - 1]


def _problems(dataset: str, root: Path, **keys) -> list[str]:
    return check_layout(dataset, root, decode=False, **keys)[1]


def test_a_one_hot_row_summing_to_two_names_file_and_line(synth19):
    _edit(synth19 / GT19, 3, lambda row: ",".join([row.split(",")[0], "1.0", "1.0"] + ["0.0"] * 7))
    problems = _problems("isic2019", synth19)
    assert len(problems) == 1 and f"{GT19}:3:" in problems[0] and "sums to 2" in problems[0]


def test_a_missing_class_column_is_a_header_problem(synth19):
    path = synth19 / GT19
    path.write_text("\n".join(",".join(r.split(",")[:-1]) for r in path.read_text().splitlines()) + "\n")  # drop UNK
    problems = _problems("isic2019", synth19)
    assert len(problems) == 1 and GT19 in problems[0] and "'UNK'" in problems[0]


def test_an_id_listed_twice_also_with_and_without_its_suffix(synth19):
    rows = (synth19 / GT19).read_text().splitlines()
    shrunk = next(r for r in rows if "_downsampled" in r)
    (synth19 / GT19).write_text("\n".join([*rows, shrunk.replace("_downsampled", "")]) + "\n")
    problems = _problems("isic2019", synth19)
    assert len(problems) == 1 and "duplicate image id" in problems[0] and f"{GT19}:{len(rows) + 1}:" in problems[0]


def test_a_listed_image_missing_is_an_error_an_unlisted_one_a_note(synth19):
    folder = synth19 / "ISIC_2019_Training_Input"
    first = sorted(folder.glob("ISIC_*.jpg"))[0]
    shutil.copy(first, folder / "ISIC_9999999.jpg")  # present, not listed
    report, problems = check_layout("isic2019", synth19, decode=False)
    assert problems == [] and len(report["notes"]) == 1 and "ISIC_9999999.jpg" in report["notes"][0]
    first.unlink()
    problems = _problems("isic2019", synth19)
    assert len(problems) == 1 and first.stem in problems[0] and "not found" in problems[0]


def test_a_masks_folder_that_covers_no_image_or_does_not_exist(tmp_path):
    write_synthetic("isic2018", tmp_path, n_train=10, n_val=4, n_test=4, size=24)
    (tmp_path / "other_masks").mkdir()
    (tmp_path / "other_masks" / "ISIC_7777777_segmentation.png").write_bytes(b"")
    problems = _problems("isic2018", tmp_path, masks="other_masks")
    assert len(problems) == 1 and "other_masks" in problems[0] and "no lesion mask" in problems[0]
    problems = _problems("isic2018", tmp_path, masks="nowhere")
    assert len(problems) == 1 and "nowhere" in problems[0] and "not found" in problems[0]


def test_csv_folder_split_values_and_empty_labels(tmp_path):
    write_synthetic("csv", tmp_path, size=24)
    path = tmp_path / "labels.csv"
    _edit(path, 2, lambda row: row.rsplit(",", 1)[0] + ",holdout")
    _edit(path, 3, lambda row: ",".join([row.split(",")[0], "", *row.split(",")[2:]]))
    problems = _problems("csv", tmp_path, **SYNTH_KEYS, split_column="split")
    assert len(problems) == 2
    assert "labels.csv:2:" in problems[1] and "split 'holdout'" in problems[1]
    assert "labels.csv:3:" in problems[0] and "empty 'diagnosis'" in problems[0]
