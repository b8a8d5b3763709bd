"""How many bytes a run's checkpoints take, from the model's shapes (built on the meta device:
no memory, no weights read): what ``attnmel train`` and a sweep check their storage against.

Apart from :mod:`attnmel.checkpoint` because it builds a model, and the model code reads
weight files through :mod:`attnmel.checkpoint`: the estimate sits above both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from attnmel.models import build_model

if TYPE_CHECKING:
    from attnmel.config import TrainConfig

__all__ = ["CheckpointSizes", "checkpoint_sizes"]


@dataclass(frozen=True)
class CheckpointSizes:
    """Bytes of a run's checkpoints: ``model`` (``best.pt``: the weights) and ``resume``
    (``last.pt``: weights, optimiser state and the epoch history); ``written``, how many
    resumable states ``fit`` writes, and ``reported``, how many of them a sweep trial hands
    to Tune before its final checkpoint (with background writes, the state written after the
    second-to-last epoch lands with the final result, which carries the final files instead)."""

    model: int
    resume: int
    written: int
    reported: int

    @property
    def final(self) -> int:
        """A finished run's folder: ``best.pt`` and the small final files."""
        return self.model + _SMALL_FILES

    @property
    def snapshot(self) -> int:
        """One resumable checkpoint of a sweep trial (``last.pt`` and ``best.pt``)."""
        return self.resume + self.model + _SMALL_FILES

    @property
    def run_dir(self) -> int:
        """Most a run directory holds at once: up to two states of ``last.pt`` and of
        ``best.pt`` (see :func:`save_checkpoint`) and the small files."""
        return min(self.written, 2) * self.resume + 2 * self.model + _SMALL_FILES


_TENSOR_OVERHEAD = 1024  # per tensor in torch's zip container: headers, alignment, pickle entry
_FILE_OVERHEAD = 64 * 1024
_EPOCH_ROW = 2048  # one epoch of history, pickled
_SMALL_FILES = 1 << 20  # config, data info, epochs, predictions, Table 3: a generous bound


class _ShapesOnly(torch.overrides.TorchFunctionMode):
    """Skips random in-place fills (``normal_``, ``uniform_``, …) of meta tensors: there is
    nothing to fill, and their meta versions import torch's compiler (seconds) on first use."""

    _RANDOM_FILLS = frozenset({"normal_", "uniform_", "bernoulli_", "exponential_", "random_", "log_normal_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
        if getattr(func, "__name__", "") in self._RANDOM_FILLS and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


@functools.lru_cache(maxsize=64)
def _model_shapes(model_cfg: Any) -> tuple[int, int, int, int]:
    """(bytes, tensors) of the model's state dict and of its trained parameters, from the model
    built on the meta device: no memory, no weights read."""
    with torch.device("meta"), _ShapesOnly():
        model = build_model(replace(model_cfg, weights="none"))
    state = model.state_dict()
    trained = [p for p in model.parameters() if p.requires_grad]
    return (sum(t.numel() * t.element_size() for t in state.values()), len(state),
            sum(p.numel() * p.element_size() for p in trained), len(trained))  # fmt: skip


def checkpoint_sizes(cfg: "TrainConfig") -> CheckpointSizes:
    """The sizes ``fit(cfg, …)`` will write, from the model's shapes. The optimiser state is
    SGD's momentum buffer, one per trained parameter."""
    weights, n_state, trained, n_trained = _model_shapes(cfg.model)
    model_bytes = weights + n_state * _TENSOR_OVERHEAD + _FILE_OVERHEAD
    momentum = trained + n_trained * _TENSOR_OVERHEAD if cfg.optim.momentum > 0 else 0
    resume = model_bytes + momentum + cfg.optim.epochs * _EPOCH_ROW
    # fit's rule: a resumable state after every `checkpoint_every`-th epoch but the last
    epochs, every = cfg.optim.epochs, cfg.runtime.checkpoint_every
    written = (epochs - 1) // every
    reported = written - (1 if cfg.runtime.background_checkpoint and written and (epochs - 1) % every == 0 else 0)
    return CheckpointSizes(model=model_bytes, resume=resume, written=written, reported=reported)
