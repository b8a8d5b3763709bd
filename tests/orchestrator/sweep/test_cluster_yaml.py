"""cluster.yaml passes Ray's own cluster-launcher validation and says what the sweeps need."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


def _validate(config: dict) -> dict:
    """What `ray up` checks before it talks to the cloud: the cluster-config JSON schema that Ray
    ships (ray/autoscaler/ray-schema.json, the published format of cluster.yaml), then the
    rules between node types that Ray's cluster-launcher documentation states."""
    schema = json.loads(resources.files("ray.autoscaler").joinpath("ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    if config["head_node_type"] not in types:
        raise ValueError(f"head_node_type {config['head_node_type']!r} is not one of available_node_types")
    for name, node in types.items():
        if node.get("min_workers", 0) > node.get("max_workers", config.get("max_workers", 0)):
            raise ValueError(f"available_node_types.{name}: min_workers exceeds max_workers")
    return config


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_ray_validates_cluster_yaml(config):
    prepared = _validate(config)
    head = prepared["available_node_types"][prepared["head_node_type"]]
    workers = {name: t for name, t in prepared["available_node_types"].items() if name != prepared["head_node_type"]}
    assert head["resources"] == {"CPU": 0}  # the head schedules no trials
    assert workers and all(t["min_workers"] == 0 for t in workers.values())  # GPU workers scale from 0
    assert all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers.values())


def test_setup_installs_the_project_and_prefetches_imagenet_weights(config):
    setup = "\n".join(config["setup_commands"])
    assert "pip install" in setup and "~/attnmel" in setup
    assert config["file_mounts"]["~/attnmel"] == "."
    assert "vgg16_bn(weights='IMAGENET1K_V1')" in setup
    # token auth on every node, with the token `attnmel sweep submit` sends
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in cmd for cmd in starts if " ray start" in cmd)
    assert any("/mnt/shared" in cmd for cmd in config["initialization_commands"])  # shared results storage


def test_dashboard_and_jobs_api_listen_on_loopback_only(config):
    # reached through `ray dashboard cluster.yaml` (SSH port forwarding), never the network
    head = [cmd for cmd in config["head_start_ray_commands"] if "ray start --head" in cmd]
    assert len(head) == 1 and "--dashboard-host=127.0.0.1" in head[0]
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert not any("0.0.0.0" in cmd for cmd in starts)
    comments = [line for line in (REPO / "cluster.yaml").read_text().splitlines() if line.lstrip().startswith("#")]
    assert any("ray dashboard cluster.yaml" in line for line in comments)
    assert any("127.0.0.1" in line and "dashboard-host" in line for line in comments)


def test_the_validator_would_catch_a_broken_config(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_wrkers"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_wrkers"):
        _validate(broken)
    broken = copy.deepcopy(config)
    broken["head_node_type"] = "nope"
    with pytest.raises(ValueError, match="head_node_type"):
        _validate(broken)
