"""One split of a dataset, read alone: a copy holding only the files its test split is made of
(``Declaration.needs``; ``write_synthetic(splits=...)``) is checked, scored as an external set
and labelled for ``predict --labels`` without the other splits' files, for every declared
dataset; a missing file of that split is one line naming it; the leak check still runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from attnmel.config import (
    ExternalSet,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
)
from attnmel.data.bundle import external_samples, select_samples
from attnmel.data.datasets import DATASETS, DECLARATIONS, SPLITS
from attnmel.data.datasets.base import MatchLabels
from attnmel.data.datasets.csvfolder import SYNTH_KEYS, SYNTH_SPLIT_COLUMN
from attnmel.data.labels import labels_of_files
from attnmel.data.layout import check_layout, load_splits, scan, source_of
from attnmel.data.synth import write_synthetic
from attnmel.errors import UserError

# A CSV folder read with its split column, so its test split is on disk (the rows say which).
KEYS = {"csv": {**SYNTH_KEYS, "split_column": SYNTH_SPLIT_COLUMN}}


def _keys(dataset: str) -> dict:
    return KEYS.get(dataset, {})


def _needed(dataset: str, splits: tuple[str, ...] = ("test",)) -> tuple[str, ...]:
    """The splits on disk whose files a test-only copy holds (every optional split written)."""
    decl = DECLARATIONS[dataset].bound(source_of(dataset, ".", **_keys(dataset)))
    return decl.needs(splits, lambda split: True)


@pytest.fixture(scope="module")
def training(synth2017_ro) -> dict:
    return load_splits("isic2017", synth2017_ro)


def _ext(dataset: str, root: Path, split: str = "test") -> ExternalSet:
    return ExternalSet(dataset=dataset, root=str(root), split=split, **_keys(dataset))


@pytest.mark.parametrize(
    "dataset, split, present, needs",
    [
        ("isic2017", "test", True, ("test",)),
        ("isic2018", "val", True, ("val",)),
        ("isic2016", "test", True, ("test",)),
        ("isic2016", "val", True, ("train",)),  # carved from training
        ("isic2019", "test", True, ("test",)),  # the official test set, where present
        ("isic2019", "test", False, ("train",)),  # else carved
        ("isic2019", "val", True, ("train",)),
        ("isic2020", "test", True, ("train",)),
        ("isic2017", "train", True, ("train",)),
    ],
)
def test_each_declaration_says_which_splits_files_make_a_split(dataset, split, present, needs):
    decl = DECLARATIONS[dataset]
    assert decl.needs((split,), lambda s: present) == needs
    if present:  # every split: every split on disk
        assert decl.needs(SPLITS, lambda s: present) == tuple(decl.splits)


def test_a_csv_folder_needs_its_own_rows_with_a_split_column_and_everything_without():
    csv = DECLARATIONS["csv"]
    with_column = csv.bound(source_of("csv", ".", **KEYS["csv"]))
    without = csv.bound(source_of("csv", ".", **SYNTH_KEYS))
    assert with_column.needs(("test",), lambda s: True) == ("test",)
    assert without.needs(("test",), lambda s: True) == ("train",)


@pytest.mark.parametrize("dataset", DATASETS)
def test_a_test_only_copy_is_an_external_set_equal_to_the_full_test(dataset, copies, training):
    full, alone = copies[dataset]
    written = sum(1 for _ in alone.rglob("*"))
    carved = _needed(dataset) == ("train",)  # ISIC 2020: all there is
    assert written < sum(1 for _ in full.rglob("*")) or carved
    got = external_samples(_ext(dataset, alone), training, "isic2017")
    want = load_splits(dataset, full, **_keys(dataset))["test"]
    assert [(s.image_id, s.label) for s in got] == [(s.image_id, s.label) for s in want]
    assert len({s.label for s in got}) == 2
    if not carved:  # the whole dataset is not there
        assert scan(source_of(dataset, alone, **_keys(dataset))).problems
    keys = _keys(dataset)
    report, problems = check_layout(dataset, alone, splits=("test",), decode=False, **keys)
    assert problems == [] and report["notes"] == [] and list(report["splits"]) == ["test"]
    assert report["splits"]["test"]["images"] == len(want)


@pytest.mark.parametrize("dataset", DATASETS)
def test_a_missing_file_of_the_split_is_one_line_naming_it(dataset, copies, training, tmp_path):
    root = Path(shutil.copytree(copies[dataset][1], tmp_path / dataset))
    split = _needed(dataset)[0]
    decl = DECLARATIONS[dataset].bound(source_of(dataset, root, **_keys(dataset)))
    labels = root / decl.splits[split].labels[0]
    labels.unlink()
    with pytest.raises(UserError) as caught:
        external_samples(_ext(dataset, root), training, "isic2017")
    message = f"external set '{dataset}_test': {labels}: ground-truth CSV not found"
    assert str(caught.value) == message


def test_the_leak_check_still_runs_on_a_test_only_copy(synth2017_ro, training, tmp_path):
    like = {"n_train": 12, "n_val": 6, "n_test": 6, "size": 48, "melanoma_fraction": 0.35}
    again = tmp_path / "again"  # synth2017_ro's draws, its test split alone
    write_synthetic("isic2017", again, **like, seed=1, splits=("test",))
    assert not (again / "ISIC-2017_Training_Data").exists()
    with pytest.raises(UserError, match="6 of its 6 images are in the training data too"):
        external_samples(_ext("isic2017", again), training, "isic2017")


def test_a_csv_folder_scanned_for_one_split_notes_no_other_splits_images(copies):
    full, _ = copies["csv"]
    report, problems = check_layout("csv", full, splits=("test",), decode=False, **KEYS["csv"])
    assert problems == [] and report["notes"] == []
    assert report["splits"]["test"]["images"] == 12


ON_DISK_TEST = [d for d in DATASETS if "test" in DECLARATIONS[d].splits or d == "csv"]


@pytest.mark.parametrize("dataset", ON_DISK_TEST)
def test_predict_labels_read_a_test_only_copy(dataset, copies):
    _, alone = copies[dataset]
    decl = DECLARATIONS[dataset].bound(source_of(dataset, alone, **_keys(dataset)))
    files = decl.splits["test"]
    samples = load_splits(dataset, alone, splits=("test",), **_keys(dataset))["test"]
    rule = None  # an official CSV: recognised by its header
    if dataset == "csv":
        keys = SYNTH_KEYS
        rule = MatchLabels(keys["id_column"], keys["label_column"], keys["positive"])
    labels, _ = labels_of_files([s.image for s in samples], alone / files.labels[0], rule=rule)
    assert [labels[s.image] for s in samples] == [s.label for s in samples]


def test_test_only_copies_of_every_dataset_are_scored_externally(copies, synth2017_ro, tmp_path):
    from attnmel.checkpoint import read_predictions
    from attnmel.train import fit

    tiny = ["data.image_size=32", "data.crop_size=32", "data.passes=1", "model.weights=none",
            "optim.batch_size=8", "optim.epochs=1", "runtime.device=cpu", "runtime.num_threads=2",
            "model.variant=vgg16_gap", "data.max_eval=8"]  # 8 images of each external set
    where = [f"data.root={synth2017_ro}", f"data.cache_dir={tmp_path / 'cache'}"]
    raw = config_to_dict(apply_overrides(TrainConfig(), where + tiny))
    raw["data"]["external"] = [
        {"dataset": d, "root": str(copies[d][1]), "split": "test", **_keys(d)} for d in DATASETS
    ]
    list(fit(config_from_dict(raw), tmp_path / "run"))
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    rows = read_predictions(tmp_path / "run" / "predictions.csv")
    for d in DATASETS:
        want = select_samples(load_splits(d, copies[d][0], **_keys(d))["test"], 8, seed=0)
        assert final["external"][f"{d}_test"]["images"] == len(want)
        scored = [r["image_id"] for r in rows if r["split"] == f"ext_{d}_test"]
        assert scored == [s.image_id for s in want]
