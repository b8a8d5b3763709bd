"""A Ray node lost while a sweep runs (its host died, its Ray was killed): one line naming it.

Tune sees such a loss as a trial whose actor died, and retries the trial from its last
checkpoint on another node (``retries``). Ray may notice the node's death only after Tune has
seen the trial fail (its health checks take seconds), so :class:`NodeWatch` keeps the node the
failed trial last reported from (``folders.PLACEMENT``) and looks again at every step of Tune's
loop, for a while; the line comes once per node, when Ray reports it dead.
"""

from __future__ import annotations

import time
from typing import Any

import ray

__all__ = ["NodeWatch"]

WATCH_SECONDS = 120.0  # how long a failed trial's node is watched for its death
POLL_SECONDS = 1.0  # at most one look at Ray's node table per this many seconds


class NodeWatch:
    """The nodes under failed trials, until Ray says whether they died."""

    def __init__(self) -> None:
        self.reported: set[str] = set()  # node ids already named
        self._watched: dict[str, tuple[float, dict[str, Any]]] = {}  # node id → (since, result)
        self._looked = 0.0

    def trial_failed(self, trial: Any) -> list[str]:
        """Watch the node ``trial`` last reported from; the lines of nodes found dead now."""
        result = getattr(trial, "last_result", None) or {}
        node_id = result.get("node_id")
        if node_id and node_id not in self.reported:
            self._watched.setdefault(node_id, (time.monotonic(), result))
        return self.look(force=True)

    def look(self, *, force: bool = False) -> list[str]:
        """The lines of watched nodes Ray now reports dead (at most one look per second)."""
        now = time.monotonic()
        if not self._watched or not ray.is_initialized():
            return []
        if not force and now - self._looked < POLL_SECONDS:
            return []
        self._looked = now
        try:
            alive = {node["NodeID"]: node["Alive"] for node in ray.nodes()}
        except Exception:  # noqa: BLE001  the cluster's state is a courtesy here, never a failure
            return []
        lines = []
        for node_id, (since, result) in list(self._watched.items()):
            if not alive.get(node_id, True):
                where = f"{result.get('hostname', '?')} ({result.get('node_ip', '?')})"
                lines.append(f"node {where} was lost: its trials retry from their last checkpoints "
                             "on the other nodes (retries)")
                self.reported.add(node_id)
            elif now - since < WATCH_SECONDS:
                continue
            del self._watched[node_id]
        return lines
