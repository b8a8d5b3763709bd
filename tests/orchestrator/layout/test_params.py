"""orchestrator.layout.params: a grid point becomes its trial's config, and the Tune params that
carry it survive JSON (what params.json holds) unchanged."""

from __future__ import annotations

import json

import pytest

from attnmel.config import TrainConfig, config_hash
from attnmel.errors import UserError
from orchestrator.layout.params import params_config, trial_config, tune_params


def test_a_point_sets_variant_roi_and_dotted_keys():
    cfg = trial_config(TrainConfig(), {"variant": "attnmel+dermo", "runtime.seed": 4, "loss.lambda1": 0.3,
                                       "optim.lr": 0.05})  # fmt: skip
    assert (cfg.model.variant, cfg.data.roi, cfg.runtime.seed) == ("attnmel", "dermo", 4)
    assert (cfg.loss.lambda1, cfg.optim.lr) == (0.3, 0.05)
    assert trial_config(TrainConfig(), {"variant": "vgg16"}).data.roi == "none"
    assert trial_config(TrainConfig(), {}) == TrainConfig()


def test_the_fields_own_rules_check_a_point():
    with pytest.raises(UserError, match="loss.lambda1' must be >= 0"):
        trial_config(TrainConfig(), {"variant": "attnmel+lesion", "loss.lambda1": -0.1})
    with pytest.raises(UserError, match="unknown config key 'optim.lrr'"):
        trial_config(TrainConfig(), {"optim.lrr": 0.1})


def test_params_round_trip_through_json_to_the_same_config():
    train = TrainConfig()
    point = {"variant": "attnmel+lesion", "runtime.seed": 2, "loss.lambda1": 1e-3, "loss.lambda2": 0.01}
    stored = json.loads(json.dumps(tune_params(train, point)))  # what Tune writes as params.json
    assert params_config(stored) == trial_config(train, point)
    assert config_hash(params_config(stored)) == config_hash(trial_config(train, point))
