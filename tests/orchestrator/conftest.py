"""Fixtures for the orchestrator tests: one small synthetic dataset per session, tiny sweep
specs, and ways to run the real ``attnmel`` command in a subprocess."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from _sweep_helpers import TINY_TRAIN, run_attnmel


@pytest.fixture(scope="session")
def sweep_data(tmp_path_factory) -> Path:
    """Synthetic ISIC 2017 (official layout, Part 1 and Part 2 files) shared by the session; read-only."""
    from attnmel.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("sweep_isic2017")
    write_synthetic("isic2017", root, n_train=16, n_val=8, n_test=8, size=48, melanoma_fraction=0.4, seed=3)
    return root


@pytest.fixture(scope="session")
def sweep_cache(tmp_path_factory) -> Path:
    """One preprocessing cache for every sweep of the session (trials share it, as on a node)."""
    return tmp_path_factory.mktemp("attnmel_cache")


@pytest.fixture
def cli_env(sweep_cache) -> dict[str, str]:
    """Environment for ``attnmel`` subprocesses: the session cache, no inherited cluster address."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(ATTNMEL_CACHE=str(sweep_cache), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture
def cli():
    """Run the real ``attnmel`` entry point in a subprocess, in the inherited environment:
    ``cli("data", "check", ...)``."""

    def run(*args: Any, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_attnmel([str(a) for a in args], dict(os.environ), timeout=timeout)

    return run


@pytest.fixture
def cache_env(sweep_cache, monkeypatch) -> None:
    """In-process sweeps: Ray workers inherit the driver's environment, hence the cache."""
    monkeypatch.setenv("ATTNMEL_CACHE", str(sweep_cache))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "grid":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_spec(sweep_data, tmp_path):
    """``make_spec(**sections) -> Path``: a tiny sweep spec file on the session dataset, its
    storage under this test's tmp_path; keyword arguments replace/merge spec sections."""

    def make(name: str = "t", **sections: Any) -> Path:
        raw = {
            "name": name,
            "dataset": {"name": "isic2017", "root": str(sweep_data)},
            "train": TINY_TRAIN,
            "grid": {"variants": ["vgg16_gap", "attnmel+lesion"], "seeds": [0]},
            "resources": {"cpus": 1, "gpus": 0},
            "storage": str(tmp_path / "results"),
            "retries": 0,
            "smoke": {"epochs": 1},
        }
        raw = _merge(raw, sections)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return make
