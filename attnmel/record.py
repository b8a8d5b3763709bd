"""The fields that say which run a result belongs to (variant, ROI, seed, effective λ, …)."""

from __future__ import annotations

from typing import Any

from attnmel.config import TrainConfig, config_hash
from attnmel.version import code_version

__all__ = ["IDENTITY_FIELDS", "run_identity"]

IDENTITY_FIELDS = (
    "dataset", "variant", "roi", "paper_name", "seed", "lambda1", "lambda2",
    "backbone", "weights", "pretrained", "config_hash", "code_version",
)  # fmt: skip


def run_identity(cfg: TrainConfig) -> dict[str, Any]:
    """Identity of the run ``cfg`` describes. λ1/λ2 are the *effective* values: 0 without a ROI."""
    from attnmel.models import paper_name

    regularised = cfg.data.roi != "none"
    return {
        "dataset": cfg.data.dataset,
        "variant": cfg.model.variant,
        "roi": cfg.data.roi,
        "paper_name": paper_name(cfg.model.variant, cfg.data.roi),
        "seed": cfg.runtime.seed,
        "lambda1": float(cfg.loss.lambda1) if regularised else 0.0,
        "lambda2": float(cfg.loss.lambda2) if regularised else 0.0,
        "backbone": cfg.model.backbone,
        "weights": cfg.model.weights,
        "pretrained": cfg.model.weights != "none",
        "config_hash": config_hash(cfg),
        "code_version": code_version(),
    }
