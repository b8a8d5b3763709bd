"""Model registry: code names → builders.

Variants register themselves with ``@register_model`` on a small builder function whose name
is the code name (``attnmel``, ``vgg16`` ...), one of :mod:`attnmel.model_names` (which owns
the names, the paper's names and which variants have attention, torch-free). ``create_model``
looks the name up and calls the builder with keyword arguments, so the training code and the
orchestrator never import a model class directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from attnmel.model_names import check_variant, has_attention, list_models

if TYPE_CHECKING:
    from torch import nn

__all__ = ["build_model", "create_model", "register_model"]


Builder = Callable[..., "nn.Module"]  # keyword arguments: backbone, weights, num_classes

_REGISTRY: dict[str, Builder] = {}


def register_model(builder: Builder) -> Builder:
    """Decorator: register a builder under its function name, a name of
    :data:`attnmel.model_names.PAPER_NAMES`. An undeclared name, or registering a name twice,
    is an error, not a silent override."""
    name = builder.__name__
    check_variant(name)
    if name in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"model {name!r} is already registered; registered models: {known}")
    _REGISTRY[name] = builder
    return builder


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered variant ``name``; keyword arguments go to its builder.

    Every builder accepts ``backbone`` ("vgg16_bn" | "vgg16"), ``weights`` ("none" |
    "imagenet" | path to a state dict) and ``num_classes``. Unknown names raise ``UserError``
    listing the valid ones.
    """
    check_variant(name)
    if name not in _REGISTRY:  # declared, but its builder's module was not imported
        import attnmel.models.variants  # noqa: F401  (registers the builders)
    return _REGISTRY[name](**kwargs)


def build_model(model_cfg, *, weights: str | None = None) -> nn.Module:
    """The network a ``ModelConfig`` describes (``weights`` overrides its weights, e.g. "none"
    when a checkpoint's state is loaded next); options that only attention variants have are
    passed to those only."""
    extra = {"gate_bias": model_cfg.gate_bias} if has_attention(model_cfg.variant) else {}
    chosen = model_cfg.weights if weights is None else weights
    return create_model(model_cfg.variant, backbone=model_cfg.backbone, weights=chosen, **extra)
