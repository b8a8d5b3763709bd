"""One optimisation step of Eq. 5 and the optimiser it steps: what every epoch of ``fit`` runs.

``train_step`` is the seam between training and the benchmarks: ``attnmel.train`` loops it
over an epoch's batches, and ``benchmarks/`` time it as it is, so a measured step is the step
that ships (the loss, the precision settings and the optimiser included).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from attnmel.config import LossConfig, OptimConfig
from attnmel.losses import LossTerms, attnmel_loss
from attnmel.runtime import Precision

__all__ = ["make_optimizer", "load_optimizer_state", "make_scheduler", "train_step"]


def _fused(device: torch.device) -> bool:
    # One kernel for the whole update instead of a few per parameter list: CUDA only (on a CPU
    # the update is a small share of a step, and the numbers stay those of the reference loop).
    return device.type == "cuda"


def make_optimizer(
    parameters: Iterable[nn.Parameter], optim: OptimConfig, device: torch.device, *, fused: bool | None = None
) -> torch.optim.SGD:
    """SGD as section 3.1 of the paper sets it (momentum, Nesterov, weight decay); ``fused``
    (None: on for CUDA) does the whole update in one kernel. The same numbers either way, to
    float32 rounding."""
    return torch.optim.SGD(
        parameters,
        lr=optim.lr,
        momentum=optim.momentum,
        nesterov=optim.nesterov and optim.momentum > 0,
        weight_decay=optim.weight_decay,
        fused=_fused(device) if fused is None else fused,
    )


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, keeping this optimiser's kernel choice: a state saved
    by a fused (CUDA) optimiser may resume on a CPU and the other way round."""
    fused = [group.get("fused") for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, was in zip(optimizer.param_groups, fused):
        group["fused"] = was


def make_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig) -> torch.optim.lr_scheduler.StepLR:
    """lr × ``lr_gamma`` every ``lr_step`` epochs (the paper: 0.1 every 10)."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=optim.lr_step, gamma=optim.lr_gamma)


def train_step(
    runner: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    rois: Tensor | None,
    *,
    loss: LossConfig,
    precision: Precision,
) -> LossTerms:
    """Forward ``images`` (B, 3, c, c), Eq. 5 against ``labels`` (B,) and the ROI maps ``rois``
    (B, 1, c, c; None without regularisation), backward, one optimiser step. Returns the loss
    terms, detached: reading them is the caller's choice (a read waits for the device)."""
    with precision.autocast(images.device):
        out = runner(precision.layout(images))
    terms = attnmel_loss(
        out.logits, labels, (out.attn3, out.attn4), rois,
        kind=loss.kind, gamma=loss.gamma, lambda1=loss.lambda1, lambda2=loss.lambda2,
    )  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return LossTerms(*(t.detach() for t in terms))
