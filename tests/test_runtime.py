"""Device and precision settings of a run: torch.compile agrees with eager, fp32 evaluation."""

from __future__ import annotations

import pytest
import torch

from attnmel.config import RuntimeConfig, TrainConfig, apply_overrides
from attnmel.runtime import Precision, resolve_precision
from attnmel.train import fit


def test_evaluation_is_fp32_unless_asked():
    cuda = torch.device("cuda")
    train, evaluation = resolve_precision(RuntimeConfig(), cuda)
    assert train == Precision(bf16=True, channels_last=True) and evaluation == Precision(False, True)
    assert resolve_precision(RuntimeConfig(eval_bf16=True), cuda)[1].bf16
    assert resolve_precision(RuntimeConfig(), torch.device("cpu")) == (Precision(), Precision())


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes(tmp_path):
    from attnmel.data.synth import write_synthetic

    root = tmp_path / "data"
    write_synthetic("isic2017", root, n_train=12, n_val=6, n_test=6, size=40, seed=1)
    cfg = apply_overrides(
        TrainConfig(),
        [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=32", "data.crop_size=32",
         "data.passes=1", "data.oversample=1", "data.roi=lesion", "model.weights=none", "optim.batch_size=6",
         "optim.epochs=2", "runtime.device=cpu", "runtime.num_threads=2"],
    )  # fmt: skip
    eager = list(fit(cfg, tmp_path / "eager"))
    compiled_cfg = apply_overrides(cfg, ["runtime.compile=true"])
    with pytest.raises(RuntimeError, match="injected failure at epoch 2"):
        list(fit(apply_overrides(compiled_cfg, ["runtime.fail_at_epoch=2"]), tmp_path / "compiled"))
    compiled = list(fit(compiled_cfg, tmp_path / "compiled"))  # resumes at epoch 2
    assert [r["epoch"] for r in compiled] == [2]
    for key in ("train_loss", "train_cls_loss", "train_dice3", "train_dice4", "val_auc", "test_auc"):
        assert compiled[0][key] == pytest.approx(eager[1][key], rel=1e-3, abs=1e-3), key
