"""A sweep's trials: the grid as explicit points, and each point's full training config.

A point maps ``"variant"`` (``attnmel+lesion``) and dotted training keys to values; Tune's
``params.json`` of a trial is ``{"train": <shared config>, "point": <point>}``, and
:func:`trial_config` turns it back into the trial's exact :class:`TrainConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

from attnmel.typed_config import set_nested
from attnmel.config import TrainConfig, config_from_dict
from attnmel.errors import UserError

if TYPE_CHECKING:
    from orchestrator.sweep.spec import SweepSpec

__all__ = ["split_variant", "trial_points", "trial_config", "check_trials"]


def split_variant(token: str) -> tuple[str, str]:
    """``"attnmel+lesion"`` → ``("attnmel", "lesion")``; ``"vgg16"`` → ``("vgg16", "none")``."""
    variant, _, roi = token.partition("+")
    return variant, roi or "none"


def trial_points(spec: "SweepSpec") -> list[dict[str, Any]]:
    """The grid as an explicit list of trial points (seed-major, so seed 0 completes first).

    A point maps ``"variant"`` (``attnmel+lesion``) and dotted training keys to values. λ1/λ2
    are crossed only into variants with a ROI: an unregularised variant runs once per seed and
    setting, since λ has no effect on it.
    """
    extra_keys = list(spec.grid.params)
    extra_values = [spec.grid.params[k] for k in extra_keys]
    points = []
    for seed in spec.grid.seeds:
        for token in spec.grid.variants:
            regularised = split_variant(token)[1] != "none"
            lambda1 = spec.grid.lambda1 if regularised and spec.grid.lambda1 else (None,)
            lambda2 = spec.grid.lambda2 if regularised and spec.grid.lambda2 else (None,)
            for combo in itertools.product(*extra_values):
                for l1, l2 in itertools.product(lambda1, lambda2):
                    point: dict[str, Any] = {"variant": token, "runtime.seed": seed}
                    point.update(zip(extra_keys, combo))
                    if l1 is not None:
                        point["loss.lambda1"] = l1
                    if l2 is not None:
                        point["loss.lambda2"] = l2
                    points.append(point)
    return points


def trial_config(params: dict[str, Any]) -> TrainConfig:
    """A trial's full training config from its Tune params (``params.json``):
    ``{"train": <shared config>, "point": {"variant": ..., "<section.key>": value, ...}}``."""
    raw = copy.deepcopy(params["train"])
    for key, value in params.get("point", {}).items():
        if key == "variant":
            variant, roi = split_variant(value)
            set_nested(raw, ["model", "variant"], variant)
            set_nested(raw, ["data", "roi"], roi)
        elif key in ("lambda1", "lambda2"):
            set_nested(raw, ["loss", key], value)
        else:
            set_nested(raw, key.split("."), value)
    return config_from_dict(raw)


def check_trials(spec: "SweepSpec") -> None:
    """Build every trial's TrainConfig once, so a bad grid value fails here, naming the key."""
    if spec.search is None:
        points = trial_points(spec)
    else:
        # each grid value and each end of each searched range must make a valid config
        points = trial_points(dataclasses.replace(spec, grid=dataclasses.replace(spec.grid, lambda1=(), lambda2=())))
        probes = []
        for key, dist in spec.search.space.items():
            for value in dist.values:
                probes.append({**points[0], key: value})
        points = points + probes
    for point in points:
        try:
            trial_config({"train": spec.train, "point": point})
        except UserError as exc:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise UserError(f"spec grid/search point ({where}): {exc}") from None
