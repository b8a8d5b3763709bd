"""The only code that runs inside Ray workers: one sweep trial is one ``attnmel.train.fit`` run.

The run directory is private scratch space on the trial's node; the Tune checkpoint is the
only state that outlives an attempt, so a retried or restored trial starts from a clean
directory filled from its latest checkpoint and ``fit`` resumes from it. A checkpoint goes
to Tune only on the epochs where ``fit`` wrote its resumable state (``runtime.checkpoint_every``)
and at the end, when it holds the best weights, the predictions and Table 3 scores only.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray import tune

from orchestrator.trials import trial_config

__all__ = ["SCRATCH_ROOT", "train_trial", "remove_stale_scratch"]

# Trials keep their run directory here, named "<worker pid>-<trial id>-...". Tune may end a
# worker process while a finished trial's thread still sits in `report`, so its cleanup cannot
# be relied on; the next trial on the node (and the driver, at the end) removes what is left.
SCRATCH_ROOT = Path(tempfile.gettempdir()) / "attnmel-trials"


@contextmanager
def _snapshot(run_dir: Path) -> Iterator[Path]:
    """A checkpoint folder of ``run_dir``: hard links (no copy) to its files. Tune copies it to
    storage inside ``report``. The previous states (``*.prev.pt``) stay out: Tune keeps the
    older checkpoint itself."""
    snap = Path(tempfile.mkdtemp(prefix="ckpt-", dir=run_dir.parent))
    try:
        for item in run_dir.iterdir():
            if not item.is_file() or item.name.startswith(".") or item.name.endswith(".prev.pt"):
                continue
            try:
                os.link(item, snap / item.name)
            except OSError:  # another filesystem or no hard links: copy
                shutil.copy2(item, snap / item.name)
        yield snap
    finally:
        shutil.rmtree(snap, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_scratch(*, trial_ids: Collection[str] = (), include_own: bool = False) -> None:
    """Delete trial run directories that no running trial uses: those of processes that are
    gone, of the given (ended) trials, and with ``include_own`` this worker's earlier ones."""
    if not SCRATCH_ROOT.is_dir():
        return
    for path in SCRATCH_ROOT.iterdir():
        owner, _, rest = path.name.partition("-")
        if not owner.isdigit():
            continue
        ended = rest.rsplit("-", 1)[0] in trial_ids or (include_own and int(owner) == os.getpid())
        if ended or not _alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def train_trial(params: dict[str, Any]) -> None:
    """Tune function trainable: one ``fit`` run, reported epoch by epoch."""
    from attnmel.train import fit

    # Tune logs every checkpoint upload at INFO; the progress lines already say each epoch
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    config = trial_config(params)
    remove_stale_scratch(include_own=True)  # Tune runs one trial at a time per worker
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{tune.get_context().get_trial_id()}-", dir=SCRATCH_ROOT))
    run_dir = scratch / "run"
    try:
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(str(run_dir))
        node_id = ray.get_runtime_context().get_node_id()  # node_ip alone cannot tell nodes of one host apart
        for result in fit(config, run_dir):
            metrics = {**result, "node_id": node_id}
            if not result["checkpoint"]:
                tune.report(metrics)
                continue
            with _snapshot(run_dir) as snap:
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(snap)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
