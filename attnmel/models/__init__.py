"""The paper's networks behind a registry: ``create_model("attnmel", weights="imagenet")``. Their
names (code, paper, which have attention) are :mod:`attnmel.model_names`, torch-free."""

from attnmel.models.backbone import BACKBONES, check_weights, imagenet_weights_path
from attnmel.models.registry import build_model, create_model, register_model
from attnmel.models.variants import ModelOutput  # importing the variants registers them

__all__ = [
    "BACKBONES",
    "ModelOutput",
    "build_model",
    "check_weights",
    "create_model",
    "imagenet_weights_path",
    "register_model",
]
