"""GPUs as Ray sees them: nodes started with logical GPUs (Ray schedules by the resources it is
told, CUDA or not), tiny trials that hold their share and compute on the CPU. How many ran at
once is read from the trials' own start and end times (an interval-overlap count), never from
how fast anything was."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli.reporting import sweep_reporting
from orchestrator.sweep.spec import load_spec

from _sweep_helpers import check_tables, run_attnmel

pytestmark = [pytest.mark.ray, pytest.mark.slow]

GRID = {"variants": ["vgg16_gap", "attnmel"], "seeds": [0, 1]}  # four trials
ONE_EPOCH = {"data": {"image_size": 40, "crop_size": 32}, "optim": {"epochs": 1}}


def most_at_once(trials: pd.DataFrame) -> int:
    """The largest number of trials whose [started_at, reported_at] intervals overlap."""
    starts = [(t, 1) for t in trials["started_at"]]
    ends = [(t, -1) for t in trials["reported_at"]]
    events = sorted(starts + ends)  # at the same instant an end (-1) sorts before a start
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def result_rows(sweep_dir: Path) -> list[dict]:
    return [json.loads(line) for path in sweep_dir.glob("*/result.json")
            for line in path.read_text().splitlines() if line.strip()]


def gpu_sweep(make_spec, name: str, gpus: float, **train):
    """The four-trial spec: each trial holds ``gpus`` GPUs and 1 CPU, computing on the CPU."""
    runtime = {"device": "cpu", **train.pop("runtime", {})}
    return load_spec(make_spec(name=name, grid=GRID, resources={"cpus": 1, "gpus": gpus},
                               train={**ONE_EPOCH, "runtime": runtime, **train}))


def run_and_check(spec, tmp_path: Path, capsys) -> pd.DataFrame:
    """Run ``spec`` on the Ray this process holds; every trial once, TERMINATED; the note that
    trials hold GPUs but compute on the CPU said once; the trials table with its placement."""
    import ray

    from orchestrator.sweep.preflight import trials_at_once
    from orchestrator.sweep.tune import run_sweep

    at_once = trials_at_once(spec, ray, spec.n_trials)
    assert run_sweep(spec, reporting=sweep_reporting()) == 0
    out = capsys.readouterr().out
    assert out.count("computes on the CPU (train.runtime.device: cpu)") == 1, out[-2000:]
    sweep_dir = tmp_path / "results" / spec.name
    trials, _ = check_tables(sweep_dir, n_trials=4, epochs=1)
    assert most_at_once(trials) == at_once  # preflight's "how many at once" is what ran
    for row in result_rows(sweep_dir):  # what each trial saw: Ray's GPUs are the visible ones
        assert row["cuda_visible_devices"] == row["gpu_ids"] != ""
    assert (trials["gpus"] == spec.resources.gpus).all() and (trials["cpus"] == 1).all()
    return trials


@pytest.mark.parametrize(("node_gpus", "trial_gpus", "ids"),
                         [(1, 0.25, ["0"] * 4), (4, 1, ["0", "1", "2", "3"])])
def test_trials_share_or_split_logical_gpus(tmp_path, make_spec, cache_env, cli_env, capsys,
                                            node_gpus, trial_gpus, ids):
    """A quarter GPU each on a 1-GPU node: four at once on GPU 0; a whole GPU each on a 4-GPU
    node: four at once on four distinct GPUs. The per-trial report and the page say where."""
    import ray

    ray.init(address="local", num_cpus=4, num_gpus=node_gpus, include_dashboard=False)
    try:
        spec = gpu_sweep(make_spec, f"gpus_{node_gpus}", trial_gpus)
        trials = run_and_check(spec, tmp_path, capsys)
        node_ip = ray.util.get_node_ip_address()
    finally:
        ray.shutdown()
    assert most_at_once(trials) == 4
    assert sorted(trials["gpu_ids"]) == ids
    assert set(trials["node_ip"]) == {node_ip} and trials["hostname"].notna().all()

    from orchestrator.results.text import placement

    sweep_dir = tmp_path / "results" / spec.name
    shown = run_attnmel(["report", "show", str(sweep_dir), "--per-trial"], cli_env)
    assert shown.returncode == 0, shown.stderr
    page = (sweep_dir / "report.html").read_text()
    for row in trials.to_dict("records"):
        where = placement(row)
        assert f"GPU {row['gpu_ids']}" in where and "1 CPU" in where
        assert where in shown.stdout and where in page


def test_gpu_trials_only_on_the_node_with_gpus(tmp_path, make_spec, cache_env, capsys):
    """A head without GPUs and a worker with two: half-GPU trials all land on the worker, two
    on each of its GPU ids, four at once; the head's CPUs stay idle."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 0})
    try:
        worker = cluster.add_node(num_cpus=4, num_gpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        trials = run_and_check(gpu_sweep(make_spec, "hetero", 0.5), tmp_path, capsys)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert set(trials["node_id"]) == {worker.node_id}
    assert trials["gpu_ids"].value_counts().to_dict() == {"0": 2, "1": 2}
    assert most_at_once(trials) == 4


def test_trial_given_a_gpu_without_cuda_ends_with_one_line(tmp_path, make_spec, cache_env, capsys):
    """Without ``runtime.device: cpu`` a trial that Ray gave a (logical) GPU finds no CUDA and
    ends before training, its error one line that says what to set."""
    import ray

    from orchestrator.sweep.tune import run_sweep

    spec = load_spec(make_spec(name="no_cuda", grid={"variants": ["vgg16_gap"], "seeds": [0]},
                               resources={"cpus": 1, "gpus": 1},
                               train={**ONE_EPOCH, "runtime": {"device": "auto"}}))
    ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False)
    try:
        assert run_sweep(spec, reporting=sweep_reporting()) == 1
    finally:
        ray.shutdown()
    assert "computes on the CPU" not in capsys.readouterr().out
    trials = pd.read_parquet(tmp_path / "results" / "no_cuda" / "trials.parquet")
    assert list(trials["status"]) == ["ERROR"] and trials["epochs_run"].tolist() == [0]
    (error,) = trials["error"]
    assert "Ray gave this trial GPU 0" in error and "CUDA finds no GPU there" in error
    assert "train.runtime.device: cpu" in error
