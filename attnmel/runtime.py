"""Where and in which number format a run computes: the device and its precision settings."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from attnmel.errors import UserError

__all__ = ["Precision", "OneShapeCompiled", "INDUCTOR_CACHE_ENV", "resolve_device", "resolve_precision", "prepare_model"]

# torch.compile's on-disk caches (inductor's generated kernels, FX graphs, AOTAutograd graphs)
# live here; unless the user set it, a folder on the node's own disk, shared by every trial of a
# node, so a worker's second trial (and the other workers on the node) reuse the first's kernels.
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


@dataclass(frozen=True)
class Precision:
    """bf16 autocast and channels-last memory layout, each on or off."""

    bf16: bool = False
    channels_last: bool = False

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """bf16 autocast on ``device`` when on, else nothing."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def layout(self, images: Tensor) -> Tensor:
        """The input batch in the memory layout the model was put in."""
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; explicit names are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"config key 'runtime.device' is {name!r} but CUDA is not available here")
    return device


def resolve_precision(runtime, device: torch.device) -> tuple[Precision, Precision]:
    """(training, evaluation) precision from ``RuntimeConfig``; None means "on for CUDA".

    Evaluation stays fp32 unless ``runtime.eval_bf16``: validation AUC picks the best epoch,
    so it must not carry bf16 rounding.
    """
    on_cuda = device.type == "cuda"
    bf16 = runtime.bf16 if runtime.bf16 is not None else on_cuda
    channels_last = runtime.channels_last if runtime.channels_last is not None else on_cuda
    return Precision(bf16, channels_last), Precision(bf16 and runtime.eval_bf16, channels_last)


class OneShapeCompiled(nn.Module):
    """Runs ``model`` with its compiled parts for one input shape only: the first one it is
    trained on. The odd last batch of an epoch, evaluation and anything under ``no_grad`` run
    eagerly, so nothing is compiled twice (a new shape or a train/eval switch would make
    torch.compile trace and generate code again, for a few batches an epoch)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.shape: torch.Size | None = None  # the training input shape the compiled code is for

    def forward(self, x: Tensor):
        if self.training and torch.is_grad_enabled() and self.shape in (None, x.shape):
            self.shape = x.shape
            return self.model(x)
        with torch.compiler.set_stance("force_eager"):
            return self.model(x)


def prepare_model(
    model: nn.Module, device: torch.device, precision: Precision, *, compile: bool, cudnn_benchmark: bool | None = None
) -> nn.Module:
    """Move ``model`` to ``device`` in ``precision``'s layout; compile its backbone when asked.

    On CUDA, ``cudnn_benchmark`` (None: on) lets cuDNN time its algorithms for every new input
    shape instead of picking by heuristics. The returned module is what runs; ``model`` itself
    (whose state_dict keys carry no compile prefix) is what checkpoints save. ``compile``
    compiles the VGG backbone in place (``nn.Module.compile``, ``dynamic=False``: one static
    graph), not the heads: on an H100, compiling the whole AttnMel-CNN gained far less than
    compiling VGG-16-GAP, which is little more than the backbone (issue 21 points at the
    attention head's upsampling backward); the returned :class:`OneShapeCompiled` keeps every
    other shape eager. ``benchmarks/gpu`` times both against eager.
    """
    model.to(device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark is not False
    if not compile:
        return model
    os.environ.setdefault(INDUCTOR_CACHE_ENV, str(Path(tempfile.gettempdir()) / "attnmel-inductor"))
    model.backbone.compile(dynamic=False)
    return OneShapeCompiled(model)
