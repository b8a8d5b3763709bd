"""Where and in which number format a run computes: the device and its precision settings."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnmel.errors import UserError

__all__ = ["Precision", "resolve_device", "resolve_precision", "prepare_model"]


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


def prepare_model(
    model: nn.Module, device: torch.device, precision: Precision, *, compile: bool, cudnn_benchmark: bool | None = None
) -> nn.Module:
    """Move ``model`` to ``device`` in ``precision``'s layout; ``torch.compile`` it when asked.

    On CUDA, ``cudnn_benchmark`` (None: on) lets cuDNN time its algorithms for every new input
    shape instead of picking by heuristics. The returned module is what runs; ``model`` itself
    (whose state_dict keys carry no compile prefix) is what checkpoints save.
    """
    model.to(device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark is not False
    return torch.compile(model, dynamic=False) if compile else model
