"""``attnmel predict`` and the Fig. 3 attention grid, on tiny runs trained on synthetic data."""

from __future__ import annotations

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from attnmel.checkpoint import FORMAT, read_epochs, read_predictions
from attnmel.config import TrainConfig, apply_overrides, load_config
from attnmel.data.augment import centre_crop
from attnmel.data.layout import load_splits
from attnmel.data.preprocess import preprocess_image
from attnmel.data.synth import write_synthetic
from attnmel.record import run_identity
from attnmel.overlay import PANEL
from attnmel.predict import collect_images, load_model, resolve_checkpoint
from attnmel.train import fit
from orchestrator.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TEST_IMAGES = "ISIC-2017_Test_v2_Data"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Synthetic ISIC 2017 and two finished one-epoch runs on it: AttnMel-CNN and VGG-16-GAP."""
    base = tmp_path_factory.mktemp("predict")
    root = base / "data"
    write_synthetic("isic2017", root, n_train=16, n_val=8, n_test=8, size=48, melanoma_fraction=0.5, seed=3)
    out = {"root": root}
    for variant in ("attnmel", "vgg16_gap"):
        cfg = apply_overrides(TrainConfig(), [
            f"data.root={root}", f"data.cache_dir={base / 'cache'}", "data.image_size=40", "data.crop_size=32",
            "data.passes=1", f"model.variant={variant}", "model.weights=none", "optim.batch_size=16",
            "optim.epochs=1", "runtime.device=cpu",
        ])  # fmt: skip
        list(fit(cfg, base / variant))
        out[variant] = base / variant
    return out


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _mixed_folder(root, folder):
    """Good images of three sizes (JPEG and PNG), a truncated JPEG, a text file named like an
    image, and a text file; returns {name: (width, height)} of the good ones."""
    folder.mkdir()
    source = Image.open(sorted((root / TEST_IMAGES).glob("ISIC_*[0-9].jpg"))[0]).convert("RGB")
    sizes = {"wide.jpg": (90, 50), "tall.png": (33, 77), "square.jpeg": (64, 64)}
    for name, size in sizes.items():
        source.resize(size).save(folder / name)
    data = (folder / "wide.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.png").write_text("not an image\n")
    (folder / "readme.txt").write_text("a note beside the images\n")
    return sizes


def test_mixed_folder_scores_the_good_images_and_names_each_bad_one(runs, tmp_path, capsys):
    sizes = _mixed_folder(runs["root"], tmp_path / "mixed")
    out = tmp_path / "out"
    code = main(["predict", str(runs["attnmel"]), str(tmp_path / "mixed"), "--out", str(out), "--overlay"])
    assert code == 1  # something was skipped
    err = capsys.readouterr().err.strip().splitlines()
    warnings = [line for line in err if line.startswith("attnmel: warning:")]
    assert len(warnings) == 2
    assert any("truncated.jpg" in w for w in warnings) and any("notes.png" in w for w in warnings)
    assert any(line.startswith("attnmel: note:") and "readme.txt" in line for line in err)
    rows = _csv(out / "predictions.csv")
    assert sorted(pathlib.Path(r["image"]).name for r in rows) == sorted(sizes)
    for row in rows:
        assert 0.0 <= float(row["prob"]) <= 1.0
        assert row["model"] == "AttnMel-CNN" and row["checkpoint"] == str((runs["attnmel"] / "best.pt").resolve())
    for name, (width, height) in sizes.items():
        overlay = out / "overlays" / f"{pathlib.Path(name).stem}.png"
        assert overlay.read_bytes()[:8] == PNG_MAGIC
        picture = np.asarray(Image.open(overlay).convert("RGB"))
        panel_row = picture[-PANEL // 2]  # a row through the panels, below the titles
        # The first panel is the whole input at its own aspect, surrounded by white.
        inked = np.flatnonzero((panel_row < 250).any(axis=1))
        first = inked[: np.argmax(np.diff(inked) > 1) + 1] if (np.diff(inked) > 1).any() else inked
        assert abs(len(first) - PANEL * width / height) <= 2, (name, len(first))
        assert picture.shape[0] > PANEL
    assert not any(p.name.startswith(".") for p in out.rglob("*"))  # no temporary files left


def test_probabilities_equal_the_runs_own_evaluation(runs, tmp_path):
    run = runs["attnmel"]
    out = tmp_path / "out"
    assert main(["predict", str(run), str(runs["root"] / TEST_IMAGES), "--out", str(out), "--batch-size", "5"]) == 0
    got = {pathlib.Path(r["image"]).stem: float(r["prob"]) for r in _csv(out / "predictions.csv")}
    stored = {r["image_id"]: r["prob"] for r in read_predictions(run / "predictions.csv") if r["split"] == "test"}
    assert set(got) == set(stored)  # superpixel maps and the metadata CSV are not scored
    ids = sorted(stored)
    np.testing.assert_allclose([got[i] for i in ids], [stored[i] for i in ids], rtol=0, atol=1e-5)
    # A different checkpoint gives different numbers (the comparison can fail).
    assert main(["predict", str(runs["vgg16_gap"] / "best.pt"), str(runs["root"] / TEST_IMAGES),
                 "--out", str(tmp_path / "gap")]) == 0  # fmt: skip
    other = {pathlib.Path(r["image"]).stem: float(r["prob"]) for r in _csv(tmp_path / "gap" / "predictions.csv")}
    assert not np.allclose([other[i] for i in ids], [stored[i] for i in ids], atol=1e-5)


def test_a_best_pt_of_the_older_format_with_conv_biases_still_predicts(runs, tmp_path):
    """best.pt files written before the VGG-16-BN biases were folded (format /2) hold a bias per
    convolution and a running mean that includes it: predict folds them and scores as before."""
    run = runs["attnmel"]
    payload = torch.load(run / "best.pt", weights_only=True)
    torch.manual_seed(0)
    state = dict(payload["model"])
    for key in [k for k in state if k.endswith(".running_mean")]:  # features.<i+1> is the BN of conv <i>
        index = int(key.split(".")[-2]) - 1
        bias = torch.randn_like(state[key])
        state[f"backbone.features.{index}.bias"] = bias
        state[key] = state[key] + bias  # the same function, in the unfolded form
    old = tmp_path / "old_best.pt"
    torch.save({**payload, "format": "attnmel-checkpoint/2", "model": state}, old)
    assert FORMAT != "attnmel-checkpoint/2"
    out = tmp_path / "out"
    assert main(["predict", str(old), str(runs["root"] / TEST_IMAGES), "--out", str(out)]) == 0
    got = {pathlib.Path(r["image"]).stem: float(r["prob"]) for r in _csv(out / "predictions.csv")}
    stored = {r["image_id"]: r["prob"] for r in read_predictions(run / "predictions.csv") if r["split"] == "test"}
    ids = sorted(stored)
    np.testing.assert_allclose([got[i] for i in ids], [stored[i] for i in ids], rtol=0, atol=1e-5)


def test_masks_outline_the_lesion(runs, tmp_path):
    image = sorted((runs["root"] / TEST_IMAGES).glob("ISIC_*[0-9].jpg"))[0]
    masks = runs["root"] / "ISIC-2017_Test_v2_Part1_GroundTruth"
    plain, outlined = tmp_path / "plain", tmp_path / "outlined"
    assert main(["predict", str(runs["vgg16_gap"]), str(image), "--out", str(plain), "--overlay"]) == 0
    assert main(["predict", str(runs["vgg16_gap"]), str(image), "--out", str(outlined), "--overlay",
                 "--masks", str(masks)]) == 0  # fmt: skip
    a = np.asarray(Image.open(plain / "overlays" / f"{image.stem}.png").convert("RGB")).astype(int)
    b = np.asarray(Image.open(outlined / "overlays" / f"{image.stem}.png").convert("RGB")).astype(int)
    changed = (a != b).any(axis=2)
    assert changed.any() and (b[changed] == 255).all()  # only white outline pixels differ


class _RunsCode:
    """Unpickling this calls ``Path.touch(marker)``: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_checkpoint_that_needs_code_is_refused_without_running_it(runs, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "best.pt"
    torch.save({"format": FORMAT, "kind": "model", "model": _RunsCode(marker)}, evil)
    image = sorted((runs["root"] / TEST_IMAGES).glob("ISIC_*[0-9].jpg"))[0]
    out = tmp_path / "out"
    assert main(["predict", str(evil), str(image), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnmel: error:") and str(evil) in err[0]
    assert not marker.exists() and not out.exists()
    # Neither is a file of another kind, nor a missing image.
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    assert main(["predict", str(tmp_path / "junk.pt"), str(image), "--out", str(out)]) == 2
    assert main(["predict", str(runs["attnmel"]), str(tmp_path / "missing.jpg"), "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2 and not out.exists()


def test_collect_images_leaves_out_superpixel_maps_and_other_files(runs):
    files, notes = collect_images([runs["root"] / TEST_IMAGES])
    assert files and all(p.suffix == ".jpg" for p in files) and files == sorted(files)
    assert len(notes) == 1 and "superpixel" in notes[0] and "metadata" in notes[0]


# --------------------------------------------------------------------------- sweeps: trial ids and Fig. 3


def _trial(sweep_dir, trial_id, index, run_dir, *, val_auc=None, done=True):
    """A Tune trial directory as a sweep leaves it, its final checkpoint a copy of ``run_dir``."""
    ident = run_identity(load_config(run_dir / "config.yaml"))
    trial_dir = sweep_dir / f"train_attnmel_{trial_id}_{index}_{ident['paper_name']}_2026-01-01_00-00-00"
    (trial_dir / "checkpoint_000000").mkdir(parents=True)
    (trial_dir / "params.json").write_text("{}")
    rows = [{**row, **ident, "trial_id": trial_id, "done": done} for row in read_epochs(run_dir)]
    if val_auc is not None:
        rows[-1]["val_auc"] = val_auc
    (trial_dir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("best.pt", "predictions.csv", "attention.json", "epochs.jsonl", "final.json") if done else ("best.pt",):
        shutil.copy(run_dir / name, trial_dir / "checkpoint_000000" / name)
    if not done:
        (trial_dir / "error.txt").write_text("Failure # 1 (occurred at 2026-01-01)\nRuntimeError: boom\n")
    return trial_dir


@pytest.fixture(scope="module")
def sweep(runs, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    sweep_dir = results / "fig3"
    sweep_dir.mkdir()
    (sweep_dir / "sweep.json").write_text(json.dumps({"name": "fig3"}))
    _trial(sweep_dir, "ab12c_00000", 0, runs["attnmel"], val_auc=0.6)
    _trial(sweep_dir, "ab12c_00001", 1, runs["attnmel"], val_auc=0.9)  # the best finished one
    _trial(sweep_dir, "ab12c_00002", 2, runs["attnmel"], val_auc=0.99, done=False)  # errored: never chosen
    _trial(sweep_dir, "ab12c_00003", 3, runs["vgg16_gap"])
    return sweep_dir


def test_trial_ids_and_directories_resolve_to_the_final_checkpoint(sweep, tmp_path):
    trial_dir = next(sweep.glob("*ab12c_00001*"))
    expected = trial_dir / "checkpoint_000000" / "best.pt"
    from attnmel.errors import UserError
    from orchestrator.layout.folders import find_trial

    assert resolve_checkpoint(find_trial(sweep.parent, "ab12c_00001")) == expected
    assert resolve_checkpoint(trial_dir) == expected
    with pytest.raises(UserError, match="no finished checkpoint"):
        resolve_checkpoint(find_trial(sweep.parent, "ab12c_00002"))
    with pytest.raises(UserError, match="ab12c_00009"):
        find_trial(sweep.parent, "ab12c_00009")
    assert load_model(expected, device="cpu").name == "AttnMel-CNN"


@pytest.mark.slow
def test_plot_attention_grid_from_each_models_best_trial(sweep, runs, tmp_path):
    from orchestrator.results.plots import attention_grid, plot_attention

    grid = attention_grid(sweep, 4, device="cpu")
    assert grid.trials == {"AttnMel-CNN": "fig3/ab12c_00001", "VGG-16-GAP": "fig3/ab12c_00003"}
    assert [(name, key) for name, key, _, _ in grid.rows] == [
        ("AttnMel-CNN", "pool3"), ("AttnMel-CNN", "pool4"), ("VGG-16-GAP", "cam")]  # fmt: skip
    # Half melanoma, half not, each the first by image id among the test images.
    test = load_splits("isic2017", runs["root"])["test"]
    first = [sorted(s.image_id for s in test if s.label == label)[:2] for label in (1, 0)]
    assert grid.image_ids == first[0] + first[1] and grid.labels == [1, 1, 0, 0]
    # The top row is the evaluated crop of the dataset image; maps are re-normalised to [0, 1].
    by_id = {s.image_id: s for s in test}
    crop = centre_crop(preprocess_image(by_id[grid.image_ids[0]].image, 40, 0.8), 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(grid.images[0], crop)
    for _, _, maps, _ in grid.rows:
        assert maps.shape == (4, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    # The probabilities are those the trial stored for these images.
    stored = {r["image_id"]: r["prob"] for r in read_predictions(runs["attnmel"] / "predictions.csv")}
    np.testing.assert_allclose(grid.rows[0][3], [stored[i] for i in grid.image_ids], atol=1e-5)

    fig = plot_attention(grid)
    assert len(fig.axes) == (1 + 3) * 4
    out = tmp_path / "fig3.png"
    assert main(["plot", "attention", str(sweep), "--images", "4", "--out", str(out), "--device", "cpu"]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000


def test_plot_attention_user_errors(sweep, tmp_path, capsys):
    assert main(["plot", "attention", str(sweep), "--images", "0", "--out", str(tmp_path / "f.png")]) == 2
    assert main(["plot", "attention", str(sweep), "--out", str(tmp_path / "no" / "f.png")]) == 2
    assert main(["plot", "attention", str(sweep), "--out", str(tmp_path / "f.png"),
                 "--data-root", str(tmp_path)]) == 2  # fmt: skip
    assert len(capsys.readouterr().err.strip().splitlines()) == 3
