"""attnmel.version.environment against the installed metadata, and constraints.txt against pyproject."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from attnmel.version import environment

REPO = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    assert all(len(pin) == 2 for pin in pins), "constraints.txt holds exact pins only"
    return {name.strip().lower(): version.strip() for name, version in pins}


def test_constraints_pin_every_declared_dependency_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pins = _pins()
    assert {r.name.lower() for r in declared} == set(pins), "one pin per dependency, and no other"
    for requirement in declared:
        assert requirement.specifier.contains(pins[requirement.name.lower()]), requirement


def test_environment_records_the_installed_versions_and_the_machine():
    import torch  # noqa: F401 - environment() reports CUDA/GPU only where torch is already imported

    info = environment()
    assert set(info) >= {"python", "platform", "cpu", "cpu_count", "packages", "cuda", "cudnn", "gpus"}
    runtime = [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0] for r in metadata.requires("attnmel") or []
               if "extra ==" not in r]  # fmt: skip
    assert {"torch", "numpy", "pillow"} <= set(info["packages"]) == set(runtime)
    for name, version in info["packages"].items():
        assert version == metadata.version(name)
    assert info["cpu"] and info["cpu_count"] >= 1 and isinstance(info["gpus"], list)
