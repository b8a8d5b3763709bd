"""A sweep on a two-node Ray cluster (ray.cluster_utils.Cluster, one machine): trials land on
both nodes and the results are complete."""

from __future__ import annotations

import pytest

from orchestrator.spec import load_spec

from _sweep_helpers import check_tables

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_trials_spread_over_two_nodes(tmp_path, make_spec, cache_env):
    import ray
    from ray.cluster_utils import Cluster

    from orchestrator.tune import run_sweep

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
        assert run_sweep(spec) == 0  # joins the running cluster, leaves it running
        assert ray.is_initialized()
    finally:
        ray.shutdown()
        cluster.shutdown()

    trials, epochs = check_tables(tmp_path / "results" / "two_nodes", n_trials=4, epochs=1)
    assert set(trials["node_id"]) == nodes  # both nodes ran trials
