"""The networks' names, stated once and torch-free: code names, the paper's names (Tables 1–2),
which variants have attention maps (only those take an ROI), the model tokens of specs and
reports ("attnmel+lesion" ↔ (variant, ROI)) and Table 2's order.

The builders behind these names live in :mod:`attnmel.models` (torch); the result tables and
sweep specs need the names alone, so they import this module and never import torch.
"""

from __future__ import annotations

from attnmel.config import ROIS
from attnmel.errors import UserError

__all__ = [
    "PAPER_NAMES",
    "ATTENTION_VARIANTS",
    "PAPER_TABLE2",
    "ROI_SUFFIXES",
    "list_models",
    "check_variant",
    "paper_name",
    "has_attention",
    "split_token",
    "model_token",
    "paper_order",
]

# Code name → paper name (Tables 1–2); each is a builder in attnmel.models.variants.
PAPER_NAMES: dict[str, str] = {
    "vgg16": "VGG-16",
    "vgg16_gap": "VGG-16-GAP",
    "melcnn": "Mel-CNN",
    "attnmel": "AttnMel-CNN",
}
# Variants whose forward returns attention maps (attn3, attn4): only these take an ROI regulariser.
ATTENTION_VARIANTS = frozenset({"attnmel"})
assert ATTENTION_VARIANTS <= PAPER_NAMES.keys()

# The ROI a model is regularised with shows in its paper name (Table 2): "AttnMel-CNN-Lesion".
ROI_SUFFIXES: dict[str, str] = {"none": "", "lesion": "-Lesion", "dermo": "-Dermo", "bkg": "-Bkg"}
assert tuple(ROI_SUFFIXES) == ROIS

# The paper's Table 2 (rows 6–12) as model tokens, in its order: every network it trains.
PAPER_TABLE2 = (
    "vgg16", "vgg16_gap", "melcnn", "attnmel", "attnmel+dermo", "attnmel+lesion", "attnmel+bkg",
)


def list_models() -> list[str]:
    """Code names of all variants, sorted."""
    return sorted(PAPER_NAMES)


def check_variant(variant: str) -> None:
    """A ``UserError`` listing the valid names unless ``variant`` is one."""
    if variant not in PAPER_NAMES:
        raise UserError(f"unknown model {variant!r}; choose one of: {', '.join(list_models())}")


def has_attention(variant: str) -> bool:
    """Whether ``variant``'s forward returns attention maps (``attn3``, ``attn4``)."""
    check_variant(variant)
    return variant in ATTENTION_VARIANTS


def paper_name(variant: str, roi: str = "none") -> str:
    """The paper's name of ``variant`` trained with reference maps ``roi``.

    ``paper_name("attnmel", "lesion") == "AttnMel-CNN-Lesion"``. An ROI on a variant without
    attention maps is a ``UserError``: there is nothing to regularise.
    """
    check_variant(variant)
    if roi not in ROI_SUFFIXES:
        raise UserError(f"unknown roi {roi!r}; choose one of: {', '.join(ROI_SUFFIXES)}")
    if roi != "none" and variant not in ATTENTION_VARIANTS:
        with_attention = ", ".join(sorted(ATTENTION_VARIANTS))
        raise UserError(
            f"roi {roi!r} needs a model with attention maps, but {variant!r} has none; "
            f"use one of: {with_attention}"
        )
    return PAPER_NAMES[variant] + ROI_SUFFIXES[roi]


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
