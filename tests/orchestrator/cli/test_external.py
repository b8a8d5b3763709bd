"""External test sets: scored once by the best model at the end of `fit`; their rows equal a
direct scoring of the same images (`attnmel predict`), their AUC/AP scikit-learn's; a leak from
the training data or a one-class set fails before anything is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from attnmel.checkpoint import read_predictions
from attnmel.config import TrainConfig, apply_overrides, config_from_dict, config_to_dict
from attnmel.data.layout import load_splits
from attnmel.data.synth import write_synthetic
from attnmel.errors import UserError
from attnmel.predict import load_model, predict_files
from attnmel.train import fit
from orchestrator.cli import main

GT18_TEST = "ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv"


def _cfg(base: Path, external: list[dict]) -> TrainConfig:
    cfg = apply_overrides(TrainConfig(), [
        f"data.root={base / 'isic2017'}", f"data.cache_dir={base / 'cache'}", "data.image_size=40",
        "data.crop_size=32", "data.passes=1", "model.variant=attnmel", "model.weights=none",
        "optim.batch_size=16", "optim.epochs=2", "runtime.device=cpu", "runtime.num_threads=2",
    ])  # fmt: skip
    raw = config_to_dict(cfg)
    raw["data"]["external"] = external
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("external")
    write_synthetic("isic2017", base / "isic2017", n_train=16, n_val=8, n_test=8, size=48, melanoma_fraction=0.5, seed=3)
    write_synthetic("isic2018", base / "isic2018", n_train=4, n_val=4, n_test=10, size=48, melanoma_fraction=0.4, seed=4)
    write_synthetic("csv", base / "clinic", n_train=6, n_val=3, n_test=3, size=48, melanoma_fraction=0.4, seed=5)
    external = [
        {"dataset": "isic2018", "root": str(base / "isic2018"), "split": "test"},
        {"dataset": "csv", "root": str(base / "clinic"), "split": "all", "label": "clinic", "images": "images",
         "labels": "labels.csv", "label_column": "diagnosis", "positive": "melanoma"},
    ]  # fmt: skip
    cfg = _cfg(base, external)
    results = list(fit(cfg, base / "run"))
    return base, cfg, results


def test_external_rows_name_their_dataset_and_equal_a_direct_scoring(run):
    base, _, _ = run
    rows = read_predictions(base / "run" / "predictions.csv")
    assert {r["dataset"] for r in rows if r["split"] in ("val", "test")} == {"isic2017"}
    ext = [r for r in rows if r["split"] == "ext_isic2018_test"]
    samples = load_splits("isic2018", base / "isic2018")["test"]
    assert [r["image_id"] for r in ext] == [s.image_id for s in samples]
    assert [r["label"] for r in ext] == [s.label for s in samples] and {r["dataset"] for r in ext} == {"isic2018"}
    model = load_model(base / "run" / "best.pt", device="cpu")
    direct = predict_files(model, [s.image for s in samples], base / "direct", progress=False)
    np.testing.assert_allclose([r["prob"] for r in ext], [r["prob"] for r in direct.rows], rtol=1e-5, atol=1e-7)
    clinic = [r for r in rows if r["split"] == "ext_clinic"]
    assert len(clinic) == 12 and {r["dataset"] for r in clinic} == {"csv"}  # split "all": every image


def test_external_auc_and_ap_are_scikit_learns_and_reach_the_last_result(run):
    base, _, results = run
    final = json.loads((base / "run" / "final.json").read_text())
    rows = read_predictions(base / "run" / "predictions.csv")
    for name in ("isic2018_test", "clinic"):
        part = [r for r in rows if r["split"] == f"ext_{name}"]
        y, p = [r["label"] for r in part], [r["prob"] for r in part]
        assert final["external"][name]["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert final["external"][name]["ap"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        assert results[-1][f"ext_{name}_auc"] == final["external"][name]["auc"]
        assert results[-1][f"ext_{name}_ap"] == final["external"][name]["ap"]
    assert not any(k.startswith("ext_") for k in results[0])  # scored once, at the end
    info = json.loads((base / "run" / "data_info.json").read_text())
    assert [(e["name"], e["images"]) for e in info["external"]] == [("isic2018_test", 10), ("clinic", 12)]


def test_predict_with_labels_gives_the_same_auc_as_the_external_set(run, capsys):
    base, _, _ = run
    final = json.loads((base / "run" / "final.json").read_text())
    out = base / "predict-labels"
    assert main(["predict", str(base / "run"), str(base / "isic2018" / "ISIC2018_Task3_Test_Input"), "--out", str(out),
                 "--labels", str(base / "isic2018" / GT18_TEST), "--device", "cpu"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["auc"] == pytest.approx(final["external"]["isic2018_test"]["auc"], abs=1e-6)
    assert metrics["images"] == 10 and "AUC" in capsys.readouterr().out
    with open(out / "predictions.csv", newline="") as f:
        assert all(r["label"] in ("0", "1") for r in csv.DictReader(f))


def test_a_label_missing_for_an_image_fails_before_scoring(run, tmp_path, capsys):
    base, _, _ = run
    gt = base / "isic2018" / GT18_TEST
    short = tmp_path / "short.csv"
    short.write_text("\n".join(gt.read_text().splitlines()[:-1]) + "\n")
    assert main(["predict", str(base / "run"), str(base / "isic2018" / "ISIC2018_Task3_Test_Input"), "--out",
                 str(tmp_path / "o"), "--labels", str(short)]) == 2  # fmt: skip
    assert "1 of the 10 images have no label" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_external_set_sharing_images_with_training_or_with_one_class_is_refused(run, tmp_path):
    base, _, _ = run
    leak = _cfg(base, [{"dataset": "isic2017", "root": str(base / "isic2017"), "split": "test", "label": "again"}])
    with pytest.raises(UserError, match="images are in the training data too"):
        next(fit(leak, tmp_path / "leak"))
    assert not (tmp_path / "leak").exists()
    one = tmp_path / "one"
    write_synthetic("isic2018", one, n_train=2, n_val=2, n_test=3, size=32, melanoma_fraction=0.0)
    with pytest.raises(UserError, match="only non-melanoma"):
        next(fit(_cfg(base, [{"dataset": "isic2018", "root": str(one)}]), tmp_path / "one-run"))
    with pytest.raises(UserError, match="names 'isic2018_test' twice"):
        _cfg(base, [{"dataset": "isic2018", "root": str(one)}] * 2)
