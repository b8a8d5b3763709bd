"""Model registry: code names → builders, with the paper's names kept beside them.

Variants register themselves with ``@register_model(paper_name=...)`` on a small builder
function whose name is the code name (``attnmel``, ``vgg16`` ...). ``create_model`` looks the
name up and calls the builder with keyword arguments, so the training code and the
orchestrator never import a model class directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from attnmel.config import ROIS
from attnmel.errors import UserError

__all__ = [
    "PAPER_NAMES",
    "PAPER_TABLE2",
    "ROI_SUFFIXES",
    "build_model",
    "create_model",
    "has_attention",
    "list_models",
    "paper_name",
    "paper_order",
    "register_model",
    "split_token",
    "model_token",
]

# The ROI a model is regularised with shows in its paper name (Table 2): "AttnMel-CNN-Lesion".
ROI_SUFFIXES: dict[str, str] = {"none": "", "lesion": "-Lesion", "dermo": "-Dermo", "bkg": "-Bkg"}
assert tuple(ROI_SUFFIXES) == ROIS

# The paper's Table 2 (rows 6–12) as model tokens, in its order: every network it trains.
PAPER_TABLE2 = ("vgg16", "vgg16_gap", "melcnn", "attnmel", "attnmel+dermo", "attnmel+lesion", "attnmel+bkg")

# Code name → paper name (Tables 1–2), filled in by ``register_model``.
PAPER_NAMES: dict[str, str] = {}


Builder = Callable[..., nn.Module]  # keyword arguments: backbone, weights, num_classes


@dataclass(frozen=True)
class _Entry:
    builder: Builder
    paper_name: str
    attention: bool  # has attention maps, so it can be regularised with an ROI


_REGISTRY: dict[str, _Entry] = {}


def register_model(*, paper_name: str, attention: bool = False) -> Callable[[Builder], Builder]:
    """Decorator: register a builder under its function name.

    ``attention=True`` marks variants whose forward returns attention maps (only those accept
    an ROI regulariser). Registering a name twice is an error, not a silent override.
    """

    def decorate(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered; registered models: {', '.join(list_models())}")
        _REGISTRY[name] = _Entry(builder=builder, paper_name=paper_name, attention=attention)
        PAPER_NAMES[name] = paper_name
        return builder

    return decorate


def list_models() -> list[str]:
    """Code names of all registered variants, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered variant ``name``; keyword arguments go to its builder.

    Every builder accepts ``backbone`` ("vgg16_bn" | "vgg16"), ``weights`` ("none" |
    "imagenet" | path to a state dict) and ``num_classes``. Unknown names raise ``UserError``
    listing the valid ones.
    """
    return _entry(name).builder(**kwargs)


def paper_name(variant: str, roi: str = "none") -> str:
    """The paper's name of ``variant`` trained with reference maps ``roi``.

    ``paper_name("attnmel", "lesion") == "AttnMel-CNN-Lesion"``. An ROI on a variant without
    attention maps is a ``UserError``: there is nothing to regularise.
    """
    entry = _entry(variant)
    if roi not in ROI_SUFFIXES:
        raise UserError(f"unknown roi {roi!r}; choose one of: {', '.join(ROI_SUFFIXES)}")
    if roi != "none" and not entry.attention:
        with_attention = ", ".join(n for n in list_models() if _REGISTRY[n].attention)
        raise UserError(
            f"roi {roi!r} needs a model with attention maps, but {variant!r} has none; use one of: {with_attention}"
        )
    return entry.paper_name + ROI_SUFFIXES[roi]


def split_token(token: str) -> tuple[str, str]:
    """A model token → (variant, ROI): ``"attnmel+lesion"`` → ``("attnmel", "lesion")``,
    ``"vgg16"`` → ``("vgg16", "none")``. Tokens name a trained setting in specs and reports."""
    variant, _, roi = token.partition("+")
    return variant, roi or "none"


def model_token(variant: str, roi: str = "none") -> str:
    """The inverse of :func:`split_token`."""
    return variant if roi == "none" else f"{variant}+{roi}"


def paper_order() -> tuple[str, ...]:
    """The paper names of Table 2's networks, in the paper's order."""
    return tuple(paper_name(*split_token(token)) for token in PAPER_TABLE2)


def build_model(model_cfg, *, weights: str | None = None) -> nn.Module:
    """The network a ``ModelConfig`` describes (``weights`` overrides its weights, e.g. "none"
    when a checkpoint's state is loaded next); options that only attention variants have are
    passed to those only."""
    extra = {"gate_bias": model_cfg.gate_bias} if has_attention(model_cfg.variant) else {}
    return create_model(
        model_cfg.variant, backbone=model_cfg.backbone, weights=model_cfg.weights if weights is None else weights, **extra
    )


def has_attention(variant: str) -> bool:
    """Whether ``variant``'s forward returns attention maps (``attn3``, ``attn4``)."""
    return _entry(variant).attention
