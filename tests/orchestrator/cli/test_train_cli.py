"""``attnmel train``: one line per epoch then the summary as JSON; bad input is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth2017")
    args = ["data", "synth", "--dataset", "isic2017", "--root", str(root), "--seed", "3",
            "--n-train", "48", "--n-val", "24", "--n-test", "24", "--size", "80"]
    assert main(args) == 0
    return root


def test_train_command_prints_epochs_then_json(synth_root, tmp_path, capsys):
    cfg_args = ["--set", f"data.root={synth_root}", "--set", f"data.cache_dir={tmp_path / 'cache'}",
                "--set", "data.image_size=40", "--set", "data.crop_size=32", "--set", "model.weights=none",
                "--set", "optim.epochs=1", "--set", "data.passes=1", "--set", "runtime.device=cpu"]
    assert main(["train", *cfg_args, "--out", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("epoch   1/1")
    assert set(json.loads(lines[-1])) == {"best_epoch", "val_auc", "val_ap", "test_auc", "test_ap"}
    assert main(["train", "--set", "optim.lr=-1", "--out", str(tmp_path / "bad")]) == 2
    assert "optim.lr" in capsys.readouterr().err
    assert main(["train", "--set", f"data.root={tmp_path / 'nope'}", "--set", "model.weights=none",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
