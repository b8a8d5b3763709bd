"""docs/kuberay_rayjob.yaml: a RayJob that names only fields KubeRay documents, sets the ones
a sweep needs, and runs `attnmel` command lines this parser accepts, on paths every pod mounts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import build_parser
from orchestrator.layout import folders
from orchestrator.sweep.spec import load_spec, sweep_path

REPO = Path(__file__).resolve().parents[3]

# The json names of KubeRay's ray.io/v1 types (ray-operator/apis/ray/v1: RayJobSpec,
# RayClusterSpec, HeadGroupSpec, WorkerGroupSpec), and Ray's runtime_env fields.
RAYJOB_SPEC = {
    "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata", "clusterSelector",
    "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML", "jobId", "submissionMode",
    "entrypointResources", "entrypointNumCpus", "entrypointNumGpus", "ttlSecondsAfterFinished",
    "shutdownAfterJobFinishes", "suspend", "schedule",
}  # fmt: skip
RAYCLUSTER_SPEC = {
    "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec", "workerGroupSpecs",
    "headServiceAnnotations", "suspend", "managedBy", "gcsFaultToleranceOptions",
}  # fmt: skip
HEAD_GROUP = {"rayStartParams", "template", "serviceType", "headService", "enableIngress"}
WORKER_GROUP = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template", "scaleStrategy",
    "suspend", "idleTimeoutSeconds", "numOfHosts",
}  # fmt: skip
RUNTIME_ENV = {"working_dir", "py_modules", "pip", "uv", "conda", "env_vars", "container", "image_uri", "config"}


@pytest.fixture(scope="module")
def job() -> dict:
    return yaml.safe_load((REPO / "docs" / "kuberay_rayjob.yaml").read_text())


def _containers(job: dict) -> list[dict]:
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    return [c for pod in pods for c in pod["spec"]["containers"]]


def test_names_only_documented_fields_and_the_ones_a_sweep_needs(job):
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC
    assert spec["shutdownAfterJobFinishes"] is True  # the cluster goes when the sweep ends
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] > 0
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_SPEC and set(cluster["headGroupSpec"]) <= HEAD_GROUP
    assert cluster["headGroupSpec"]["rayStartParams"] == {"num-cpus": "0"}  # no trials on the head
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())  # KubeRay: map[string]string
    gpus = [c["resources"] for c in _containers(job) if "nvidia.com/gpu" in c["resources"].get("limits", {})]
    assert gpus and all(int(r["limits"]["nvidia.com/gpu"]) >= 1 and r["requests"] == r["limits"] for r in gpus)


def test_runtime_environment_sets_documented_variables(job):
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert set(env) <= RUNTIME_ENV
    readme = (REPO / "README.md").read_text()
    assert env["env_vars"] and all(isinstance(v, str) for v in env["env_vars"].values())
    assert all(f"`{name}" in readme for name in env["env_vars"] if name.startswith("ATTNMEL_"))


def _commands(entrypoint: str) -> tuple[list[str], list[str], str]:
    """(resume args, run args, the file tested) of the entrypoint's if/then/else."""
    match = re.fullmatch(r"if \[ -f (\S+) \]; then attnmel (.+?); else attnmel (.+?); fi", entrypoint.strip())
    assert match, entrypoint
    return shlex.split(match[2]), shlex.split(match[3]), match[1]


def test_entrypoint_runs_or_resumes_the_sweep_on_paths_every_pod_mounts(job):
    resume, run, tested = _commands(job["spec"]["entrypoint"])
    parser = build_parser()
    resume_args, run_args = parser.parse_args(resume), parser.parse_args(run)  # real `attnmel` command lines
    assert (resume_args.sweep_command, run_args.sweep_command) == ("resume", "run")
    overrides = [*run_args.overrides, f"storage={run_args.storage}"]
    spec = load_spec(REPO / run_args.spec, overrides=overrides)  # a spec of this repository
    assert resume_args.path == sweep_path(spec) and tested == f"{sweep_path(spec)}/{folders.SWEEP_META}"
    mounts = [{m["mountPath"] for m in c["volumeMounts"]} for c in _containers(job)]
    for path in (spec.dataset.root, spec.storage):
        assert all(any(path.startswith(f"{m}/") for m in ours) for ours in mounts), path
