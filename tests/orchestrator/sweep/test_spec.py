"""orchestrator.sweep.spec: typed, validated sweep specs and the trials they expand to (no Ray)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from attnmel.errors import UserError
from attnmel.model_names import list_models
from attnmel.record import run_identity
from orchestrator.sweep.spec import load_spec, spec_from_dict, spec_to_dict
from orchestrator.layout.params import trial_config
from attnmel.model_names import split_token

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "experiments").glob("*.yaml"))


def _raw(root: Path, **extra) -> dict:
    raw = {
        "name": "s",
        "dataset": {"name": "isic2017", "root": str(root)},
        "train": {"optim": {"epochs": 3}},
        "grid": {"variants": ["vgg16", "attnmel", "attnmel+lesion", "attnmel+dermo"], "seeds": [0, 1]},
    }
    raw.update(extra)
    return raw


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_load_plain_and_smoke(path):
    spec = load_spec(path)
    smoke = load_spec(path, smoke=True)
    assert smoke.name == f"{spec.name}-smoke"
    assert smoke.train.optim.epochs < spec.train.optim.epochs
    assert smoke.resources.gpus == 0 and smoke.train.model.weights == "none"
    assert spec_from_dict(spec_to_dict(spec)) == spec  # what sweep.json stores reads back equal


def test_paper_specs_cover_the_papers_tables():
    s2016, s2017 = load_spec(REPO / "experiments/paper_isic2016.yaml"), load_spec(REPO / "experiments/paper_isic2017.yaml")
    assert set(s2016.grid.variants) == {"vgg16", "vgg16_gap", "melcnn", "attnmel"}
    assert {split_token(v) for v in s2017.grid.variants} == {
        *((m, "none") for m in list_models()), ("attnmel", "lesion"), ("attnmel", "dermo"), ("attnmel", "bkg")
    }
    for spec, passes, n in ((s2016, 5, 12), (s2017, 2, 21)):
        assert spec.grid.seeds == (0, 1, 2) and spec.train.model.weights == "imagenet"
        configs = [trial_config(spec.train, p) for p in spec.points]
        assert len(configs) == n and {c.data.resolved_passes() for c in configs} == {passes}
        assert {(c.loss.lambda1, c.loss.lambda2) for c in configs} == {(0.001, 0.01)}  # paper's λ


def test_demo_regularises_attnmel_on_synthetic_data_without_weights():
    spec = load_spec(REPO / "experiments/demo.yaml")
    # 3 seeds × (AttnMel-CNN + 2 ROIs × 2 λ1 values): sized for 10 minutes on the slower machines
    assert len(spec.points) == 3 * (1 + 2 * 2) and spec.dataset.synthetic["task"] == "confounded"
    assert {split_token(v) for v in spec.grid.variants} == {("attnmel", "none"), ("attnmel", "lesion"), ("attnmel", "bkg")}
    assert spec.train.model.weights == "none" and spec.resources.gpus == 0


def test_lambda_grid_multiplies_only_regularised_variants(tmp_path):
    spec = spec_from_dict(_raw(tmp_path, grid={
        "variants": ["vgg16", "attnmel", "attnmel+lesion", "attnmel+dermo"],
        "seeds": [0, 1, 2], "lambda1": [0, 1e-3, "1e-2"], "lambda2": [0, 0.1],
    }))  # fmt: skip
    points = spec.points
    # 2 unregularised variants once per seed, 2 regularised ones × 3 × 2 λ per seed
    assert len(points) == 3 * (2 + 2 * 3 * 2)
    keys = [tuple(sorted(p.items())) for p in points]
    assert len(set(keys)) == len(keys)
    identities = [run_identity(trial_config(spec.train, p)) for p in points]
    for point, ident in zip(points, identities):
        variant, roi = split_token(point["variant"])
        assert (ident["variant"], ident["roi"], ident["seed"]) == (variant, roi, point["runtime.seed"])
        if roi == "none":
            assert (ident["lambda1"], ident["lambda2"]) == (0.0, 0.0) and "loss.lambda1" not in point
        else:
            assert (ident["lambda1"], ident["lambda2"]) == (point["loss.lambda1"], point["loss.lambda2"])
    assert {i["lambda1"] for i in identities if i["roi"] == "lesion"} == {0.0, 0.001, 0.01}  # "1e-2" read as a number


def test_grid_over_any_training_key_and_overrides(tmp_path):
    spec = spec_from_dict(
        _raw(tmp_path),
        overrides=["grid.optim.lr=[0.1, 0.01]", "grid.seeds=[5]", "train.optim.epochs=4", f"dataset.root={tmp_path}/x"],
    )
    configs = [trial_config(spec.train, p) for p in spec.points]
    assert len(configs) == 4 * 2
    assert {c.optim.lr for c in configs} == {0.1, 0.01}
    assert {c.runtime.seed for c in configs} == {5} and {c.optim.epochs for c in configs} == {4}
    assert {c.data.root for c in configs} == {str(tmp_path / "x")}


def test_resources_set_threads_and_keep_cpu_trials_off_gpus(tmp_path):
    spec = spec_from_dict(_raw(tmp_path, resources={"cpus": 3, "gpus": 0}))
    assert spec.train.runtime.num_threads == 3 and spec.train.runtime.device == "cpu"
    gpu = spec_from_dict(_raw(tmp_path, resources={"cpus": 4, "gpus": 0.5}))
    assert gpu.resources.gpus == 0.5 and gpu.train.runtime.device == "auto"


def test_relative_paths_resolve_against_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = spec_from_dict(_raw("data/ISIC", storage="out"))
    assert spec.dataset.root == str(tmp_path / "data/ISIC") and spec.storage == str(tmp_path / "out")
    assert spec_from_dict(_raw("d", storage="s3://bucket/prefix")).storage == "s3://bucket/prefix"


def test_smoke_block_shrinks_and_set_wins(tmp_path):
    raw = _raw(tmp_path, smoke={"epochs": 1, "crop_size": 32, "image_size": 40, "variants": ["attnmel"], "seeds": [0]})
    spec = spec_from_dict(raw, smoke=True, overrides=["grid.seeds=[7]"])
    assert spec.name == "s-smoke" and spec.grid.variants == ("attnmel",) and spec.grid.seeds == (7,)
    assert (spec.train.optim.epochs, spec.train.data.crop_size) == (1, 32)
    with pytest.raises(UserError, match="no 'smoke' block"):
        spec_from_dict(_raw(tmp_path), smoke=True)


def test_optuna_search_and_asha(tmp_path):
    raw = _raw(tmp_path, grid={"variants": ["attnmel+lesion"]},
               search={"num_samples": 5, "space": {"lambda1": {"loguniform": ["1e-5", 1.0]}, "optim.lr": {"choice": [0.1, 0.01]}}},
               scheduler={"grace_period": 2, "reduction_factor": 2})  # fmt: skip
    spec = spec_from_dict(raw)
    assert spec.search.space["loss.lambda1"].values == (1e-5, 1.0)
    assert (spec.scheduler.grace_period, spec.scheduler.reduction_factor) == (2, 2.0)
    for bad, match in (
        ({"metric": "test_auc"}, "validation AUC only"),
        ({"space": {"lambda1": {"loguniform": [0, 1]}}}, "low > 0"),
        ({"space": {"lambda2": {"uniform": [-1, 1]}}}, ">= 0"),
        ({"space": {"lambda1": {"normal": [0, 1]}}}, "search.space.lambda1"),
    ):
        with pytest.raises(UserError, match=match):
            spec_from_dict({**raw, "search": {**raw["search"], **bad}})
    with pytest.raises(UserError, match="grace_period"):
        spec_from_dict({**raw, "scheduler": {"grace_period": 10}})  # more than the 3 epochs


@pytest.mark.parametrize(
    "change, key",
    [
        ({"bogus": 1}, "'bogus'"),
        ({"dataset": {"name": "isic2017", "root": ".", "rooot": "x"}}, "dataset.rooot"),
        ({"train": {"optim": {"lrr": 0.1}}}, "optim.lrr"),
        ({"train": {"optim": {"epochs": "ten"}}}, "optim.epochs"),
        ({"train": {"model": {"variant": "vgg16"}}}, "train.model.variant"),
        ({"grid": {"variants": ["resnet50"]}}, "unknown variant 'resnet50'"),
        ({"grid": {"variants": ["vgg16+lesion"]}}, "vgg16\\+lesion"),
        ({"grid": {"variants": ["attnmel+skin"]}}, "skin"),
        ({"grid": {"variants": ["attnmel+lesion"], "lambda1": [0.1, -1e-3]}}, "grid.lambda1"),
        ({"grid": {"variants": ["attnmel"], "seeds": [0.5]}}, "grid.seeds"),
        ({"grid": {"variants": ["attnmel"], "optim.batch_size": [0]}}, "optim.batch_size"),
        ({"grid": {"variants": ["attnmel"], "colour": [1]}}, "grid.colour"),
        ({"resources": {"cpus": 1, "gpus": -1}}, "resources.gpus"),
        ({"retries": "two"}, "'retries'"),
        ({"name": "a b"}, "'name'"),
        ({"smoke": {"epochz": 1}}, "smoke.epochz"),
    ],
)
def test_bad_specs_name_the_key(tmp_path, change, key):
    with pytest.raises(UserError, match=key) as info:
        spec_from_dict({**_raw(tmp_path), **change})
    assert "\n" not in str(info.value)


def test_bad_overrides_and_files(tmp_path):
    with pytest.raises(UserError, match="unknown spec key 'nme'"):
        spec_from_dict(_raw(tmp_path), overrides=["nme=x"])
    with pytest.raises(UserError, match="section.key=value"):
        spec_from_dict(_raw(tmp_path), overrides=["grid.seeds"])
    with pytest.raises(UserError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_spec(bad)


def test_spec_is_frozen_and_plain(tmp_path):
    spec = spec_from_dict(_raw(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    assert yaml.safe_load(yaml.safe_dump(spec_to_dict(spec))) == spec_to_dict(spec)


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("name: s\ndataset:\n  name: isic2017: x\n")
    with pytest.raises(UserError) as info:
        load_spec(bad)
    assert str(info.value) == f"sweep spec {bad} is not valid YAML: line 3, column 17: mapping values are not allowed here"


def test_synthetic_block_follows_write_synthetics_signature(tmp_path):
    import inspect

    from attnmel.data.synth import write_synthetic

    keywords = {
        name: p.default
        for name, p in inspect.signature(write_synthetic).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name != "overwrite"
    }
    assert {"n_train", "size", "seed", "melanoma_fraction"} <= set(keywords)
    dataset = {"name": "isic2017", "root": str(tmp_path)}
    spec = spec_from_dict(_raw(tmp_path, dataset={**dataset, "synthetic": keywords}))
    assert spec.dataset.synthetic == keywords  # every keyword (its default is a valid value) is accepted
    spec = spec_from_dict(_raw(tmp_path, dataset={**dataset, "synthetic": {"melanoma_fraction": "5e-1", "size": 64}}))
    assert spec.dataset.synthetic == {"melanoma_fraction": 0.5, "size": 64}  # coerced by the annotation
    for synthetic, match in (
        ({"overwrite": True}, "dataset.synthetic.overwrite"),
        ({"colour": 1}, "dataset.synthetic.colour"),
        ({"size": "big"}, "dataset.synthetic.size"),
        ({"seed": 1.5}, "dataset.synthetic.seed"),
        ({"melanoma_fraction": [0.3]}, "dataset.synthetic.melanoma_fraction"),
    ):
        with pytest.raises(UserError, match=match):
            spec_from_dict(_raw(tmp_path, dataset={**dataset, "synthetic": synthetic}))


def test_sections_built_in_code_are_checked_like_yaml(tmp_path):
    from orchestrator.sweep.spec import ResourceSpec, SchedulerSpec

    for build, raw in (
        (lambda: ResourceSpec(cpus=0), {"resources": {"cpus": 0}}),
        (lambda: ResourceSpec(gpus=1.5), {"resources": {"gpus": 1.5}}),
        (lambda: SchedulerSpec(reduction_factor=1), {"scheduler": {"reduction_factor": 1}}),
    ):
        with pytest.raises(UserError) as in_code:
            build()
        with pytest.raises(UserError) as from_yaml:
            spec_from_dict(_raw(tmp_path, **raw))
        assert str(in_code.value) == str(from_yaml.value) and str(in_code.value).startswith("spec key '")



def test_a_csv_dataset_and_external_sets_reach_every_trials_config(tmp_path):
    raw = _raw(tmp_path, dataset={"name": "csv", "root": str(tmp_path), "labels": "y.csv", "label_column": "dx",
                                  "positive": "mel", "group_column": "patient", "masks": "seg"},
               external=[{"name": "isic2018", "root": "ham", "split": "test"},
                         {"name": "isic2020", "root": str(tmp_path / "siim"), "split": "all", "label": "siim"}])  # fmt: skip
    spec = spec_from_dict(raw)
    for config in (trial_config(spec.train, p) for p in spec.points):
        data = config.data
        assert (data.dataset, data.labels, data.label_column, data.positive, data.group_column, data.masks) == (
            "csv", "y.csv", "dx", "mel", "patient", "seg")
        assert [(e.dataset, e.split, e.name) for e in data.external] == [
            ("isic2018", "test", "isic2018_test"), ("isic2020", "all", "siim")]
        assert data.external[0].root == str(Path.cwd() / "ham")  # resolved on the driver
    assert spec_from_dict(spec_to_dict(spec)) == spec


@pytest.mark.parametrize("change, text", [
    ({"dataset": {"name": "isic2017", "root": "r", "label_column": "dx"}}, "dataset.label_column"),
    ({"dataset": {"name": "csv", "root": "r"}}, "data.labels"),
    ({"external": [{"dataset": "isic2018", "root": "r"}]}, "external[1].dataset"),
    ({"external": [{"name": "isic2021", "root": "r"}]}, "external.name"),
    ({"external": [{"name": "isic2018", "root": "r", "split": "dev"}]}, "external.split"),
    ({"train": {"data": {"external": []}}}, "'external'"),
])  # fmt: skip
def test_bad_dataset_and_external_keys_name_the_key(tmp_path, change, text):
    with pytest.raises(UserError, match=re.escape(text)):
        spec_from_dict(_raw(tmp_path, **change))
