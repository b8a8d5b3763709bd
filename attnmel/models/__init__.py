"""The paper's networks behind a registry: ``create_model("attnmel", weights="imagenet")``."""

from attnmel.models.backbone import BACKBONES, check_weights, imagenet_weights_path
from attnmel.models.registry import (
    PAPER_NAMES,
    ROI_SUFFIXES,
    build_model,
    create_model,
    has_attention,
    list_models,
    paper_name,
    register_model,
)
from attnmel.models.variants import ModelOutput  # importing the variants registers them

__all__ = [
    "BACKBONES",
    "PAPER_NAMES",
    "ROI_SUFFIXES",
    "ModelOutput",
    "build_model",
    "check_weights",
    "create_model",
    "has_attention",
    "imagenet_weights_path",
    "list_models",
    "paper_name",
    "register_model",
]
