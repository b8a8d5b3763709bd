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


def test_cudnn_autotuning_is_a_runtime_choice_that_leaves_the_numbers_key_alone():
    from attnmel.train import numbers_key

    cfg = TrainConfig()
    assert numbers_key(apply_overrides(cfg, ["runtime.cudnn_benchmark=false"])) == numbers_key(cfg)
    assert numbers_key(apply_overrides(cfg, ["optim.lr=0.02"])) != numbers_key(cfg)


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes(tmp_path):
    """One SGD step per epoch, so epoch 1's losses are those of the initial weights on one
    batch: compiled and eager must agree to float32 rounding there (inductor may reorder the
    sums of each convolution and reduction; that moves a loss by ~1e-6 relative, and 1e-4
    leaves room for a slower CPU's other kernels). Later epochs are not compared: a reordered
    sum changes the update, and from-scratch training amplifies that from step to step."""
    from attnmel.data.synth import write_synthetic

    root = tmp_path / "data"
    write_synthetic("isic2017", root, n_train=12, n_val=6, n_test=6, size=40, seed=1)
    cfg = apply_overrides(
        TrainConfig(),
        [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=32", "data.crop_size=32",
         "data.passes=1", "data.oversample=1", "data.roi=lesion", "model.weights=none", "optim.batch_size=12",
         "optim.epochs=2", "runtime.device=cpu", "runtime.num_threads=2"],
    )  # fmt: skip
    eager = list(fit(cfg, tmp_path / "eager"))
    # One compile (it costs a minute on a CPU): a compiled epoch 1, then a crash at epoch 2.
    compiled = []
    with pytest.raises(RuntimeError, match="injected failure at epoch 2"):
        for row in fit(apply_overrides(cfg, ["runtime.compile=true", "runtime.fail_at_epoch=2"]), tmp_path / "c"):
            compiled.append(row)
    for key in ("train_loss", "train_cls_loss", "train_dice3", "train_dice4"):
        assert compiled[0][key] == pytest.approx(eager[0][key], rel=1e-4, abs=1e-7), key
    # The compiled run's checkpoint has the plain model's keys, so it resumes (here eagerly).
    compiled += list(fit(cfg, tmp_path / "c"))
    assert [r["epoch"] for r in compiled] == [1, 2] and compiled[-1]["done"]
