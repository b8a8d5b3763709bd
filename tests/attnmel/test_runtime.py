"""Device and precision settings of a run: torch.compile agrees with eager and compiles one
shape only, fp32 evaluation."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from torch import nn

from attnmel.config import RuntimeConfig, TrainConfig, apply_overrides
from attnmel.runtime import INDUCTOR_CACHE_ENV, OneShapeCompiled, Precision, prepare_model, resolve_precision
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


class _Tiny(nn.Module):
    """A backbone (what prepare_model compiles) and an eager head, like the paper's networks."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.backbone(x).mean(dim=(2, 3)))


@pytest.mark.slow
def test_compiling_keeps_the_state_dict_and_every_shape_but_the_training_one_eager(tmp_path, monkeypatch):
    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)
    torch.manual_seed(0)
    model = _Tiny()
    keys = list(model.state_dict())
    runner = prepare_model(model, torch.device("cpu"), Precision(), compile=True)
    assert isinstance(runner, OneShapeCompiled) and list(model.state_dict()) == keys  # checkpoints unchanged
    # inductor's caches on the node's own disk unless the user chose a folder
    assert os.environ[INDUCTOR_CACHE_ENV] == os.path.join(tempfile.gettempdir(), "attnmel-inductor")
    runner.train()
    runner(torch.randn(8, 3, 8, 8)).sum().backward()  # compiles the backbone for (8, 3, 8, 8)
    with torch.compiler.set_stance("fail_on_recompile"):  # any further compile raises from here on
        runner(torch.randn(8, 3, 8, 8)).sum().backward()
        runner(torch.randn(5, 3, 8, 8)).sum().backward()  # the odd last batch of an epoch
        runner.eval()
        with torch.no_grad():
            runner(torch.randn(3, 3, 8, 8))  # evaluation
        with pytest.raises(Exception, match="recompile"):  # the check can fail: the bare module would recompile
            model.backbone(torch.randn(5, 3, 8, 8))


@pytest.mark.slow
def test_compiled_training_matches_eager_never_recompiles_and_resumes(tmp_path, monkeypatch):
    """Two SGD steps per epoch (a full batch of 8, then the odd 4): epoch 1's losses are those of
    the initial weights and one update, so compiled and eager agree to float32 rounding there
    (inductor may reorder the sums of each convolution and reduction; that moves a loss by ~1e-6
    relative, and 1e-4 leaves room for a slower CPU's other kernels). Later epochs are not
    compared: a reordered sum changes the update, and from-scratch training amplifies that.
    After epoch 1 nothing compiles again: the odd batch and evaluation run eagerly."""
    from attnmel.data.synth import write_synthetic

    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "inductor"))
    root = tmp_path / "data"
    write_synthetic("isic2017", root, n_train=12, n_val=6, n_test=6, size=40, seed=1)
    cfg = apply_overrides(
        TrainConfig(),
        [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.image_size=32", "data.crop_size=32",
         "data.passes=1", "data.oversample=1", "data.roi=lesion", "model.weights=none", "optim.batch_size=8",
         "optim.epochs=3", "runtime.device=cpu", "runtime.num_threads=2"],
    )  # fmt: skip
    eager = list(fit(apply_overrides(cfg, ["optim.epochs=1"]), tmp_path / "eager"))
    # One compile (it costs a minute on a CPU): a compiled epoch 1, epoch 2 where any compile
    # would raise, then a crash at epoch 3.
    run = fit(apply_overrides(cfg, ["runtime.compile=true", "runtime.fail_at_epoch=3"]), tmp_path / "c")
    compiled = [next(run)]
    with torch.compiler.set_stance("fail_on_recompile"):
        compiled.append(next(run))
        with pytest.raises(RuntimeError, match="injected failure at epoch 3"):
            next(run)
    for key in ("train_loss", "train_cls_loss", "train_dice3", "train_dice4"):
        assert compiled[0][key] == pytest.approx(eager[0][key], rel=1e-4, abs=1e-7), key
    assert any((tmp_path / "inductor").iterdir())  # the kernels went where the cache was pointed
    # The compiled run's checkpoint has the plain model's keys, so it resumes (here eagerly).
    compiled += list(fit(cfg, tmp_path / "c"))
    assert [r["epoch"] for r in compiled] == [1, 2, 3] and compiled[-1]["done"]
