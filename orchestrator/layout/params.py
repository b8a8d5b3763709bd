"""A trial's grid point → the trial's :class:`TrainConfig`, and the Tune params that carry both.

A point maps ``"variant"`` (a model token, ``attnmel+lesion``) and dotted training keys
(``runtime.seed``, ``loss.lambda1``, ``optim.lr``, …) to values; the spec expands its grid into
points (:meth:`orchestrator.sweep.spec.GridSpec.points`). Tune's param space, and each trial's
``params.json``, is ``{"train": <shared config as plain data>, "point": <point>}``:
:func:`tune_params` writes that shape and :func:`params_config` reads it back, on the driver,
in the trainable and in the result tables. Nothing here knows the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attnmel.config import TrainConfig, config_from_dict, config_to_dict
from attnmel.model_names import split_token
from attnmel.typed_config import set_nested

__all__ = ["trial_config", "tune_params", "params_config"]


def trial_config(train: TrainConfig, point: Mapping[str, Any]) -> TrainConfig:
    """``train`` with the point's values set: ``variant`` picks the model and its ROI, every
    other key is a dotted training key. Every field's own rules check the result."""
    raw = config_to_dict(train)
    for key, value in point.items():
        if key == "variant":
            variant, roi = split_token(value)
            set_nested(raw, ["model", "variant"], variant)
            set_nested(raw, ["data", "roi"], roi)
        else:
            set_nested(raw, key.split("."), value)
    return config_from_dict(raw)


def tune_params(train: TrainConfig, point: Any) -> dict[str, Any]:
    """Tune's param space (and a trial's ``params.json``): the shared config as plain data and
    the point, or whatever Tune resolves into one (``tune.grid_search``, a search space)."""
    return {"train": config_to_dict(train), "point": point}


def params_config(params: Mapping[str, Any]) -> TrainConfig:
    """A trial's exact config from its resolved Tune params (``params.json``)."""
    return trial_config(config_from_dict(params["train"]), params.get("point", {}))
