"""orchestrator.sweep.tune builds the Tuner the spec describes (no Ray runtime started here)."""

from __future__ import annotations

from pathlib import Path

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import LogUniform

from orchestrator.sweep.spec import load_spec, spec_from_dict

from orchestrator.layout.params import trial_config
from orchestrator.sweep.tune import KEEP_CHECKPOINTS, _search_space, trial_resources, tune_settings

REPO = Path(__file__).resolve().parents[3]


def _tune_config(spec):
    return tune_settings(spec).tune_config


def test_optuna_and_asha_maximise_validation_auc(tmp_path):
    # (constructing a Tuner already writes tuner.pkl into the storage folder)
    spec = load_spec(REPO / "experiments/lambda_optuna.yaml", overrides=[f"storage={tmp_path}"])
    config = _tune_config(spec)
    assert isinstance(config.search_alg, OptunaSearch)
    # the best validation AUC so far: the same number the best-epoch rule and the tables use
    assert (config.search_alg.metric, config.search_alg.mode) == ("best_val_auc", "max") == (config.metric, config.mode)
    assert config.num_samples == spec.search.num_samples
    assert isinstance(config.scheduler, ASHAScheduler)
    assert config.scheduler._max_t == spec.train.optim.epochs  # noqa: SLF001
    space = _search_space(spec)
    for key in ("loss.lambda1", "loss.lambda2"):
        assert isinstance(space[key].get_sampler(), LogUniform)
        assert (space[key].lower, space[key].upper) == spec.search.space[key].values
    # every sample Optuna could draw is a valid trial config
    for _ in range(5):
        point = {k: v.sample() if isinstance(v, tune.search.sample.Domain) else v for k, v in space.items()}
        cfg = trial_config(spec.train, point)
        assert cfg.data.roi == "lesion" and 1e-5 <= cfg.loss.lambda1 <= 1.0


def test_grid_search_is_the_explicit_trial_list_with_resources_and_retries(tmp_path):
    raw = {
        "name": "g",
        "dataset": {"name": "isic2017", "root": str(tmp_path)},
        "grid": {"variants": ["vgg16", "attnmel+lesion"], "seeds": [0, 1], "lambda1": [0.0, 0.1]},
        "resources": {"cpus": 2, "gpus": 0.5},
        "retries": 3,
        "storage": str(tmp_path / "results"),
    }
    spec = spec_from_dict(raw)
    settings = tune_settings(spec)
    config, run = settings.tune_config, settings.run_config
    assert config.search_alg is None and config.num_samples == 1
    points = settings.param_space["point"]["grid_search"]
    assert len(points) == 2 * (1 + 2) == settings.total
    assert run.failure_config.max_failures == 3
    # the newest two, never by score: the experiment state always names a kept checkpoint
    assert (run.checkpoint_config.num_to_keep, run.checkpoint_config.checkpoint_score_attribute) == (2, None)
    assert KEEP_CHECKPOINTS == 2
    assert run.storage_path == spec.storage and run.name == "g"
    assert trial_resources(spec) == {"cpu": 2, "gpu": 0.5}
