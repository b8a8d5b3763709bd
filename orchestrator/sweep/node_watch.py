"""A Ray node lost while a sweep runs (its host died, its Ray was killed): one line naming it.

Tune sees such a loss as a trial whose actor died; it retries the trial from its last
checkpoint on another node (``retries``). The line names the node from the trial's last result
(``folders.PLACEMENT``), once per node, when Ray reports that node dead.
"""

from __future__ import annotations

from typing import Any

import ray

__all__ = ["lost_node"]


def lost_node(trial: Any) -> tuple[str, str] | None:
    """(node id, its line) when the node ``trial`` last reported from is dead, else None."""
    result = getattr(trial, "last_result", None) or {}
    node_id = result.get("node_id")
    if not node_id or not ray.is_initialized():
        return None
    try:
        alive = {node["NodeID"]: node["Alive"] for node in ray.nodes()}
    except Exception:  # noqa: BLE001  the cluster's state is a courtesy here, never a failure
        return None
    if alive.get(node_id, True):
        return None
    where = f"{result.get('hostname', '?')} ({result.get('node_ip', '?')})"
    return node_id, (f"node {where} was lost: its trials retry from their last checkpoints "
                     "on the other nodes (retries)")
