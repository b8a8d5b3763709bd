"""What a run records, stated once: the fields that say which run a result belongs to, the
metrics and losses of each epoch, and the maps Table 3 scores. ``fit`` yields them, the run
directory and the result tables store them; everything else imports these names. Torch-free.
"""

from __future__ import annotations

from typing import Any

from attnmel.config import TrainConfig, config_hash
from attnmel.version import code_version

__all__ = [
    "IDENTITY", "IDENTITY_FIELDS", "SPLIT_METRICS", "LOSS_TERMS", "MAP_NAMES", "MAP_TITLES", "run_identity",
    "EXTERNAL_PREFIX", "external_split", "external_metrics", "is_external_metric", "is_scored_split",
]  # fmt: skip

# Which run a result belongs to, with each field's plain type (the tables' column types).
IDENTITY: dict[str, type] = {
    "dataset": str, "variant": str, "roi": str, "paper_name": str, "seed": int, "lambda1": float, "lambda2": float,
    "backbone": str, "weights": str, "pretrained": bool, "config_hash": str, "code_version": str,
}  # fmt: skip
IDENTITY_FIELDS = tuple(IDENTITY)

# The metrics of each epoch's evaluation, and of the best (validation-AUC) epoch: scikit-learn's
# average precision and ROC AUC of the melanoma probability on each split.
SPLIT_METRICS = ("val_auc", "val_ap", "test_auc", "test_ap")

# The training losses of an epoch (means over its steps): Eq. 5's total, the focal (or cross-
# entropy) term and the two Dice terms of the attention maps A3, A4 (0 without a ROI).
LOSS_TERMS = ("train_loss", "train_cls_loss", "train_dice3", "train_dice4")

# Spatial maps scored against the lesion masks (Table 3): AttnMel-CNN's pool-3 and pool-4
# attention, VGG-16-GAP's class activation map; in Table 3's order, with how figures title them.
MAP_TITLES = {"pool3": "pool-3 attention", "pool4": "pool-4 attention", "cam": "class activation map"}
MAP_NAMES = tuple(MAP_TITLES)


# An external test set ``name`` (``attnmel.config.ExternalSet.name``, e.g. "isic2018_test"): its
# rows in ``predictions`` have split "ext_<name>" (and the dataset named), and the best epoch's
# model's AUC and AP on it are "ext_<name>_auc" / "ext_<name>_ap" (in the last result of a
# run, its final.json and the trials table).
EXTERNAL_PREFIX = "ext_"


def external_split(name: str) -> str:
    """The ``split`` of an external set's rows in ``predictions``."""
    return f"{EXTERNAL_PREFIX}{name}"


def is_scored_split(split: str) -> bool:
    """Whether ``split`` names scored images: ``val``, ``test`` or an external set's ``ext_<name>``."""
    return split in ("val", "test") or (split.startswith(EXTERNAL_PREFIX) and len(split) > len(EXTERNAL_PREFIX))


def external_metrics(name: str) -> tuple[str, str]:
    """The (AUC, AP) keys of an external set."""
    return f"{EXTERNAL_PREFIX}{name}_auc", f"{EXTERNAL_PREFIX}{name}_ap"


def is_external_metric(key: str) -> bool:
    """Whether ``key`` is one of :func:`external_metrics`' keys."""
    return key.startswith(EXTERNAL_PREFIX) and key.endswith(("_auc", "_ap"))


def run_identity(cfg: TrainConfig) -> dict[str, Any]:
    """Identity of the run ``cfg`` describes. λ1/λ2 are the *effective* values: 0 without a ROI."""
    from attnmel.model_names import paper_name

    regularised = cfg.data.roi != "none"
    identity = {
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
    assert tuple(identity) == IDENTITY_FIELDS
    return identity
