"""A sweep on a two-node Ray cluster (ray.cluster_utils.Cluster, one machine): trials land on
both nodes and the results are complete."""

from __future__ import annotations

import pytest

from orchestrator.sweep.spec import load_spec

from _sweep_helpers import check_tables

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_trials_spread_over_two_nodes(tmp_path, make_spec, cache_env):
    import ray
    from ray.cluster_utils import Cluster

    from orchestrator.cli.reporting import sweep_reporting
    from orchestrator.sweep.tune import run_sweep

    # One CPU per node and per trial: two trials at a time can only run on both nodes.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        assert len(nodes) == 2
        grid = {"variants": ["vgg16_gap", "attnmel"], "seeds": [0, 1]}
        spec = load_spec(make_spec(name="two_nodes", grid=grid, train={"optim": {"epochs": 1}}))
        assert run_sweep(spec, reporting=sweep_reporting()) == 0  # joins the running cluster, leaves it running
        assert ray.is_initialized()
    finally:
        ray.shutdown()
        cluster.shutdown()

    trials, epochs = check_tables(tmp_path / "results" / "two_nodes", n_trials=4, epochs=1)
    assert set(trials["node_id"]) == nodes  # both nodes ran trials


def test_losing_a_worker_node_mid_trial_retries_it_elsewhere(tmp_path, make_spec, cli_env):
    """The node running a trial dies mid-training: Tune retries the trial from its last
    checkpoint on the surviving node; every trial ends once, TERMINATED, with predictions."""
    import json
    import subprocess
    import sys
    import time

    import pandas as pd
    from ray.cluster_utils import Cluster

    from _sweep_helpers import REPO

    epochs = 8
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    proc = None
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        head_id = cluster.head_node.node_id
        grid = {"variants": ["vgg16_gap", "attnmel"], "seeds": [0]}
        # Enough epochs that the trial is still training when its node dies: with 3 it once
        # finished in the moments between its first result and the kill (nothing to retry).
        spec = make_spec(name="node_loss", grid=grid, retries=2, train={"optim": {"epochs": epochs}})
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "sweep", "run", str(spec), "--address", cluster.address],
            env=cli_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        sweep_dir = tmp_path / "results" / "node_loss"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait for a trial on the worker node to report an epoch
            rows = [json.loads(line) for path in sweep_dir.glob("*/result.json") for line in path.read_text().splitlines() if line.strip()]
            if any(row.get("node_id") == worker.node_id and row.get("epoch") == 1 for row in rows):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no trial reported from the worker node")
        cluster.remove_node(worker, allow_graceful=False)  # the node dies mid-trial
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        cluster.shutdown()

    trials, _ = check_tables(sweep_dir, n_trials=2, epochs=epochs)
    assert trials["num_failures"].sum() >= 1  # the lost trial was retried...
    assert set(trials["node_id"]) == {head_id}  # ...and finished on the survivor
    predictions = pd.read_parquet(sweep_dir / "predictions.parquet")
    assert set(predictions["trial_id"]) == set(trials["trial_id"])
