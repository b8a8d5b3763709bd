"""Synthetic data: the exact official layout, usable by check_layout, separable classes, reproducible."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from attnmel.data.layout import check_layout, load_splits
from attnmel.data.preprocess import preprocess_image, preprocess_map
from attnmel.data.roi import load_roi
from attnmel.data.synth import synth_lesion, write_synthetic
from attnmel.errors import UserError


def test_isic2017_official_names(synth2017_ro):
    top = sorted(p.name for p in synth2017_ro.iterdir())
    expected = []
    for split in ("Test_v2", "Training", "Validation"):
        p = f"ISIC-2017_{split}"
        expected += [f"{p}_Data", f"{p}_Part1_GroundTruth", f"{p}_Part2_GroundTruth", f"{p}_Part3_GroundTruth.csv"]
    assert top == sorted(expected)
    train = synth2017_ro / "ISIC-2017_Training_Data"
    assert (train / "ISIC-2017_Training_Data_metadata.csv").is_file()
    with open(synth2017_ro / "ISIC-2017_Training_Part3_GroundTruth.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image_id", "melanoma", "seborrheic_keratosis"]
    for image_id, mel, sk in rows[1:]:
        assert mel in ("0.0", "1.0") and sk in ("0.0", "1.0") and not (mel == sk == "1.0")
        assert (train / f"{image_id}.jpg").is_file() and (train / f"{image_id}_superpixels.png").is_file()
        assert (synth2017_ro / "ISIC-2017_Training_Part1_GroundTruth" / f"{image_id}_segmentation.png").is_file()
        part2 = synth2017_ro / "ISIC-2017_Training_Part2_GroundTruth"
        feats = json.loads((part2 / f"{image_id}_features.json").read_text())
        assert sorted(feats) == sorted(["pigment_network", "negative_network", "streaks", "milia_like_cyst"])
        mask = Image.open(synth2017_ro / "ISIC-2017_Training_Part1_GroundTruth" / f"{image_id}_segmentation.png")
        assert mask.mode == "L" and set(np.unique(np.asarray(mask))) <= {0, 255}
        assert mask.size == Image.open(train / f"{image_id}.jpg").size


def test_isic2016_official_names_and_csv_formats(synth2016_ro):
    assert sorted(p.name for p in synth2016_ro.iterdir()) == sorted(
        [
            "ISBI2016_ISIC_Part3_Training_Data",
            "ISBI2016_ISIC_Part3_Test_Data",
            "ISBI2016_ISIC_Part3_Training_GroundTruth.csv",
            "ISBI2016_ISIC_Part3_Test_GroundTruth.csv",
            "ISBI2016_ISIC_Part1_Training_GroundTruth",
            "ISBI2016_ISIC_Part1_Test_GroundTruth",
        ]
    )
    train = (synth2016_ro / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv").read_text().splitlines()
    test = (synth2016_ro / "ISBI2016_ISIC_Part3_Test_GroundTruth.csv").read_text().splitlines()
    assert len(train) == 20 and len(test) == 8  # no header rows
    assert {line.split(",")[1] for line in train} == {"benign", "malignant"}
    assert {line.split(",")[1] for line in test} == {"0.0", "1.0"}
    image_id = train[0].split(",")[0]
    assert (synth2016_ro / "ISBI2016_ISIC_Part1_Training_GroundTruth" / f"{image_id}_Segmentation.png").is_file()


@pytest.mark.parametrize("dataset", ["isic2017", "isic2016"])
def test_synthetic_data_passes_check_layout_with_the_requested_counts(tmp_path, dataset):
    n_val = 3 if dataset == "isic2017" else None  # ISIC 2016 carves its validation split from training
    counts = write_synthetic(dataset, tmp_path, n_train=10, n_val=n_val, n_test=5, size=32, melanoma_fraction=0.4)
    report, problems = check_layout(dataset, tmp_path)
    assert problems == []
    assert counts["train"] == {"images": 10, "melanoma": 4} and counts["test"] == {"images": 5, "melanoma": 2}
    assert report["splits"]["test"]["images"] == 5 and report["splits"]["test"]["melanoma"] == 2
    train, val = report["splits"]["train"]["images"], report["splits"]["val"]["images"]
    assert (train, val) == ((10, 3) if dataset == "isic2017" else (8, 2))


def test_melanoma_is_visibly_different(tmp_path):
    """Two hand-made cues (darkness, colour spread) already separate the classes: a CNN can learn it."""
    write_synthetic("isic2017", tmp_path, n_train=60, n_val=4, n_test=4, size=48, seed=3)
    samples = load_splits("isic2017", tmp_path)["train"]
    labels = np.array([s.label for s in samples])
    darkness, spread = [], []
    for s in samples:
        img = preprocess_image(s.image, size=32).astype(np.float64)  # (3, 32, 32), what a model sees
        lesion = img[:, preprocess_map(load_roi(s, "lesion"), size=32) == 1]  # (3, n) lesion pixels
        darkness.append(-lesion.mean())
        spread.append(lesion.std(axis=1).mean())
    assert 0 < labels.sum() < len(labels)
    assert roc_auc_score(labels, darkness) > 0.9
    assert roc_auc_score(labels, spread) > 0.9


def test_some_images_have_no_dermoscopic_feature(synth2017_ro):
    totals = [int(load_roi(s, "dermo").sum()) for s in load_splits("isic2017", synth2017_ro)["train"]]
    assert 0 in totals and max(totals) > 0


def test_same_seed_same_files_and_refuses_to_overwrite(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 5), (b, 5), (c, 6)):
        write_synthetic("isic2016", root, n_train=6, n_test=3, size=24, seed=seed)
    name = "ISBI2016_ISIC_Part3_Training_Data/ISIC_0000000.jpg"
    assert (a / name).read_bytes() == (b / name).read_bytes() != (c / name).read_bytes()
    with pytest.raises(UserError, match="already exists"):
        write_synthetic("isic2016", a, n_train=6, n_test=3, size=24)
    write_synthetic("isic2016", a, n_train=7, n_test=3, size=24, overwrite=True)
    assert len((a / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv").read_text().splitlines()) == 7
    assert [p.name for p in a.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="validation"):
        write_synthetic("isic2016", tmp_path, n_val=3)
    with pytest.raises(UserError, match="n-train"):
        write_synthetic("isic2017", tmp_path, n_train=0)
    assert list(tmp_path.iterdir()) == []


# --- the confounded task -------------------------------------------------------------------


def _sticker(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of the green sticker, found from colour alone (skin and every
    lesion colour have more red than green)."""
    x = rgb.astype(np.int64)
    return (x[..., 1] - x[..., 0]) > 40


def _read_split(root, split):
    """[(label, rgb, mask)] of one split, read back from the written files."""
    out = []
    for s in load_splits("isic2017", root)[split]:
        rgb = np.asarray(Image.open(s.image).convert("RGB"))
        out.append((s.label, rgb, load_roi(s, "lesion").astype(bool)))
    return out


@pytest.fixture(scope="module")
def confounded(tmp_path_factory):
    root = tmp_path_factory.mktemp("confounded")
    counts = write_synthetic(
        "isic2017", root, n_train=60, n_val=40, n_test=40, size=48, melanoma_fraction=0.4, seed=7,
        task="confounded", signal=0.5, confounder_rate=0.8,
    )
    return root, counts


def test_confounder_agrees_with_the_label_at_the_rate_in_training_and_at_chance_elsewhere(confounded):
    root, counts = confounded
    for split in ("train", "val", "test"):
        rows = _read_split(root, split)
        labels = np.array([label for label, _, _ in rows])
        marked = np.array([_sticker(rgb).sum() >= 5 for _, rgb, _ in rows])
        assert marked.sum() == counts[split]["marked"]
        agree = float(np.mean(marked == (labels == 1)))
        mel, other = marked[labels == 1].mean(), marked[labels == 0].mean()
        if split == "train":
            assert abs(agree - 0.8) <= 0.03, agree  # held per class, so only rounding is off
            assert mel > 0.7 and other < 0.3
        else:  # half of each class is marked: the dot carries no information about the label
            assert abs(mel - 0.5) <= 0.07 and abs(other - 0.5) <= 0.07, (mel, other)
            assert abs(agree - 0.5) <= 0.07


def test_masks_align_with_the_lesions_and_never_cover_the_sticker(confounded):
    root, _ = confounded
    for split in ("train", "val", "test"):  # masks exist for every split, test included
        for _, rgb, mask in _read_split(root, split):
            grey = rgb.astype(np.float64).mean(axis=2)
            sticker = _sticker(rgb)
            assert not (sticker & mask).any()
            skin = np.median(grey[~mask & ~sticker])
            dark = (grey < skin - 25) & ~sticker  # lesion pixels are clearly darker than the skin
            iou = (dark & mask).sum() / (dark | mask).sum()
            assert iou > 0.8, (split, iou)


def test_signal_fades_the_melanoma_cues_to_the_benign_look():
    def darkness_auc(signal: float) -> float:
        rng = np.random.default_rng(0)
        labels, scores = [], []
        for i in range(60):
            img, mask = synth_lesion(rng, 32, 42, melanoma=bool(i % 2), signal=signal)
            labels.append(i % 2)
            scores.append(-img[mask].mean())
        return roc_auc_score(labels, scores)

    assert darkness_auc(1.0) > 0.95
    assert 0.3 < darkness_auc(0.0) < 0.7
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    full, _ = synth_lesion(rng_a, 24, 32, melanoma=True)
    same, _ = synth_lesion(rng_b, 24, 32, melanoma=True, signal=1.0)
    assert np.array_equal(full, same)


def test_default_task_is_abcd_without_any_sticker(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    counts = write_synthetic("isic2017", a, n_train=8, n_val=4, n_test=4, size=32, seed=2)
    write_synthetic("isic2017", b, n_train=8, n_val=4, n_test=4, size=32, seed=2, task="abcd", signal=1.0)
    assert all("marked" not in c for c in counts.values())
    for path in sorted(a.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path
    for split in ("train", "val", "test"):
        assert all(not _sticker(rgb).any() for _, rgb, _ in _read_split(a, split))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "ruler"}, "unknown task"),
        ({"task": "confounded", "signal": 1.5}, "--signal must be in"),
        ({"signal": -0.1}, "--signal must be in"),
        ({"task": "confounded", "confounder_rate": 1.2}, "--confounder-rate must be in"),
        ({"confounder_rate": 0.9}, "--confounder-rate needs --task confounded"),
    ],
)
def test_bad_task_knobs(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message) as info:
        write_synthetic("isic2017", tmp_path, n_train=4, n_val=2, n_test=2, size=24, **kwargs)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
