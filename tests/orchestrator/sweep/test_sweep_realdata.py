"""The paper_isic2017 smoke sweep on the real ISIC 2017 copy in ../shared/isic2017."""

from __future__ import annotations

import json

import pytest

from _sweep_helpers import REAL_ISIC2017, check_tables, run_attnmel

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(not REAL_ISIC2017.is_dir(), reason=f"real ISIC 2017 copy not found at {REAL_ISIC2017}"),
]


def test_paper_isic2017_smoke_on_real_data(tmp_path, cli_env):
    # The smoke block as shipped, two of its variants and one epoch to keep the suite short.
    args = ["sweep", "run", "experiments/paper_isic2017.yaml", "--smoke", "--num-cpus", "2",
            "--set", f"dataset.root={REAL_ISIC2017.resolve()}", "--storage", str(tmp_path / "results"),
            "--set", "grid.variants=[vgg16_gap, attnmel+lesion]", "--set", "train.optim.epochs=1"]  # fmt: skip
    proc = run_attnmel(args, cli_env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep_dir = tmp_path / "results" / "paper_isic2017-smoke"
    trials, epochs = check_tables(sweep_dir, n_trials=2, epochs=1)
    assert set(trials["paper_name"]) == {"VGG-16-GAP", "AttnMel-CNN-Lesion"}
    assert ((trials["test_auc"] > 0) & (trials["test_auc"] < 1)).all()  # real data is not separable at this size
    for trial in trials.itertuples():
        # each trial read the official splits (2000/150/600 images, 374/30/117 melanoma) and
        # kept the smoke block's stratified subsets of them
        checkpoint = next((sweep_dir / trial.trial_dir).glob("checkpoint_*"))
        info = json.loads((checkpoint / "data_info.json").read_text())
        assert info["root"] == str(REAL_ISIC2017.resolve())
        full = {split: (c["images"], c["melanoma"]) for split, c in info["counts_before_limits"].items()}
        assert full == {"train": (2000, 374), "val": (150, 30), "test": (600, 117)}
        assert [info["counts"][split]["images"] for split in ("train", "val", "test")] == [64, 48, 48]
    # the regularised trial trained its attention against the real lesion masks
    lesion = epochs.merge(trials[["trial_id", "roi"]], on="trial_id").query("roi == 'lesion'")
    assert (lesion["train_dice3"] > 0).all() and (lesion["train_dice4"] > 0).all()
