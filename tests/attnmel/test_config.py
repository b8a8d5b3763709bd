"""Config loading: paper defaults, strict keys and types, overrides, hashing."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from attnmel.config import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_hash,
    config_to_dict,
    load_config,
    save_config,
)
from attnmel.errors import UserError


def test_defaults_are_the_papers_settings():
    cfg = TrainConfig()
    assert (cfg.optim.batch_size, cfg.optim.lr, cfg.optim.momentum, cfg.optim.nesterov) == (32, 0.01, 0.9, True)
    assert (cfg.optim.weight_decay, cfg.optim.lr_step, cfg.optim.lr_gamma, cfg.optim.epochs) == (1e-4, 10, 0.1, 50)
    assert (cfg.data.image_size, cfg.data.crop_size, cfg.data.crop_fraction, cfg.data.oversample) == (256, 224, 0.8, 4)
    assert (cfg.loss.kind, cfg.loss.gamma, cfg.loss.lambda1, cfg.loss.lambda2) == ("focal", 2.0, 0.001, 0.01)
    assert cfg.data.resolved_passes() == 2
    assert dataclasses.replace(cfg.data, dataset="isic2016").resolved_passes() == 5


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(TrainConfig(), ["data.roi=lesion", "optim.epochs=3", "data.crop_size=64"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"optim": {"learning_rate": 0.1}}, "optim.learning_rate"),
        ({"optimiser": {}}, "optimiser"),
        ({"optim": {"epochs": "ten"}}, "optim.epochs"),
        ({"optim": {"epochs": 2.5}}, "optim.epochs"),
        ({"optim": {"nesterov": 1}}, "optim.nesterov"),
        ({"data": {"roi": "hair"}}, "data.roi"),
        ({"loss": {"lambda1": -0.1}}, "loss.lambda1"),
        ({"optim": {"batch_size": 0}}, "optim.batch_size"),
        ({"data": {"crop_size": 48}}, "data.crop_size"),
        ({"data": {"crop_size": 288}}, "data.crop_size"),
        ({"data": {"dataset": None}}, "data.dataset"),
    ],
)
def test_bad_keys_and_values_name_the_key(raw, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        config_from_dict(raw)


def test_ints_are_accepted_for_floats_and_kept_as_floats():
    cfg = config_from_dict({"optim": {"lr": 1}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)


def test_overrides_parse_yaml_scalars_and_reject_garbage():
    cfg = apply_overrides(TrainConfig(), ["runtime.bf16=true", "data.max_train=null", "model.weights=none"])
    assert cfg.runtime.bf16 is True and cfg.data.max_train is None and cfg.model.weights == "none"
    for bad in ["optim.lr", "lr=0.1", "optim.lr.x=1", "optim.nope=1"]:
        with pytest.raises(UserError):
            apply_overrides(TrainConfig(), [bad])


def test_hash_is_stable_and_sensitive():
    a = TrainConfig()
    assert config_hash(a) == config_hash(config_from_dict(config_to_dict(a)))
    assert config_hash(a) != config_hash(apply_overrides(a, ["runtime.seed=1"]))
    assert len(config_hash(a)) == 12


def test_load_config_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(UserError):
        load_config(listy)


def test_exponent_without_dot_is_a_float(tmp_path):
    cfg = apply_overrides(TrainConfig(), ["optim.lr=1e-3"])
    assert cfg.optim.lr == 1e-3
    path = tmp_path / "c.yaml"
    path.write_text("loss:\n  lambda1: 1e-4\n")
    assert load_config(path).loss.lambda1 == 1e-4
    with pytest.raises(UserError, match="optim.lr"):
        apply_overrides(TrainConfig(), ["optim.lr=fast"])


@pytest.mark.parametrize(
    "build, section, raw",
    [
        (lambda: DataConfig(crop_size=48), "data", {"crop_size": 48}),
        (lambda: DataConfig(image_size=64, crop_size=96), "data", {"image_size": 64, "crop_size": 96}),
        (lambda: DataConfig(roi="hair"), "data", {"roi": "hair"}),
        (lambda: DataConfig(normalization="imagenet"), "data", {"normalization": "imagenet"}),
        (lambda: ModelConfig(backbone="resnet50"), "model", {"backbone": "resnet50"}),
        (lambda: LossConfig(lambda2=-1.0), "loss", {"lambda2": -1.0}),
        (lambda: OptimConfig(epochs="3"), "optim", {"epochs": "3"}),
        (lambda: RuntimeConfig(checkpoint_every=0), "runtime", {"checkpoint_every": 0}),
        (lambda: RuntimeConfig(compile=1), "runtime", {"compile": 1}),
    ],
)
def test_configs_built_in_code_are_checked_like_yaml(build, section, raw):
    with pytest.raises(UserError) as in_code:
        build()
    with pytest.raises(UserError) as from_yaml:
        config_from_dict({section: raw})
    assert str(in_code.value) == str(from_yaml.value)
    assert str(in_code.value).startswith(f"config key '{section}.")


def test_crop_size_message_and_replace_are_checked():
    with pytest.raises(UserError, match=r"^config key 'data\.crop_size' must be a multiple of 32, got 48$"):
        DataConfig(crop_size=48)
    with pytest.raises(UserError, match="data.passes"):
        dataclasses.replace(TrainConfig().data, passes=0)
    assert DataConfig(crop_size=64, image_size=64).crop_size == 64


def test_new_runtime_model_and_data_keys():
    cfg = TrainConfig()
    assert (cfg.runtime.compile, cfg.runtime.eval_bf16, cfg.runtime.checkpoint_every) == (None, False, 1)
    assert (cfg.model.gate_bias, cfg.data.normalization) == (False, "train")
    cfg = apply_overrides(cfg, ["runtime.compile=true", "runtime.checkpoint_every=5", "model.gate_bias=true",
                                "data.normalization=official", "runtime.eval_bf16=true"])  # fmt: skip
    assert (cfg.runtime.compile, cfg.runtime.checkpoint_every, cfg.model.gate_bias) == (True, 5, True)
    assert (cfg.data.normalization, cfg.runtime.eval_bf16) == ("official", True)
    assert config_hash(cfg) != config_hash(TrainConfig())


def test_lists_of_names_have_one_owner():
    from attnmel import config
    from attnmel.data import layout, roi
    from attnmel import model_names
    from attnmel.models import backbone

    assert layout.DATASETS is config.DATASETS and roi.ROIS is config.ROIS
    assert tuple(model_names.ROI_SUFFIXES) == config.ROIS
    assert tuple(backbone.BACKBONES) == config.BACKBONES  # the weights table covers exactly these
    assert {f.name: f.metadata["choices"] for f in dataclasses.fields(DataConfig) if "choices" in f.metadata} == {
        "dataset": config.DATASETS, "roi": config.ROIS, "normalization": ("train", "official"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "text, line, column",
    [
        ("optim:\n  lr: 0.1\n  epochs: x: 3\n", 3, 12),  # the second colon
        ("data:\n  roi: [lesion\n", 3, 1),
        ("loss: {kind: focal\n", 2, 1),
    ],
)
def test_yaml_syntax_errors_name_line_and_column(tmp_path, text, line, column):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"config file {path} is not valid YAML: line {line}, column {column}: ")
    assert "\n" not in message

