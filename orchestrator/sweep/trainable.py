"""The only code that runs inside Ray workers: one sweep trial is one ``attnmel.train.fit`` run.

The run directory is private scratch space on the trial's node; the Tune checkpoint is the
only state that outlives an attempt, so a retried or restored trial starts from a clean
directory filled from its latest checkpoint and ``fit`` resumes from it. A checkpoint goes
to Tune only with the results after which ``fit`` completed a resumable state
(``runtime.checkpoint_every``) and at the end, when it holds the best weights, the predictions
and Table 3 scores only. Results reach Tune from a second thread, so neither Tune's copy of a
checkpoint nor its result hand-over holds up the next epoch.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import ray
from ray import tune

from orchestrator.sweep.grid import params_config

__all__ = ["SCRATCH_ROOT", "train_trial", "remove_stale_scratch", "snapshot"]

# Trials keep their run directory here, named "<worker pid>-<trial id>-...". Tune may end a
# worker process while a finished trial's thread still sits in `report`, so its cleanup cannot
# be relied on; the next trial on the node (and the driver, at the end) removes what is left.
SCRATCH_ROOT = Path(tempfile.gettempdir()) / "attnmel-trials"


def snapshot(run_dir: Path) -> Path:
    """A checkpoint folder of ``run_dir``: hard links (no copy) to its files, so it keeps this
    moment's files while the run replaces them. Tune copies it to storage inside ``report``.
    The previous states (``*.prev.pt``) stay out: Tune keeps the older checkpoint itself."""
    snap = Path(tempfile.mkdtemp(prefix="ckpt-", dir=run_dir.parent))
    for item in run_dir.iterdir():
        if not item.is_file() or item.name.startswith(".") or item.name.endswith(".prev.pt"):
            continue
        try:
            os.link(item, snap / item.name)
        except OSError:  # another filesystem or no hard links: copy
            shutil.copy2(item, snap / item.name)
    return snap


class _Reporter:
    """Hands results (and checkpoint snapshots) to Tune in order from a second thread, so
    Tune's copy of a checkpoint into storage and its result hand-over overlap the next epoch
    instead of stalling training. At most ``depth`` results wait; ``put`` blocks beyond that.

    An exception inside ``tune.report`` (``SystemExit`` when Tune stops the trial) is raised in
    the training thread by the next ``put`` or by ``finish``.
    """

    def __init__(self, depth: int = 1) -> None:
        self._queue: queue.Queue[tuple[dict[str, Any], Path | None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="attnmel-report", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            metrics, snap = item
            try:
                if self._error is None:
                    checkpoint = tune.Checkpoint.from_directory(str(snap)) if snap is not None else None
                    tune.report(metrics, checkpoint=checkpoint)
            except BaseException as exc:  # noqa: BLE001  SystemExit included: handed to the training thread
                self._error = exc
            finally:
                if snap is not None:
                    shutil.rmtree(snap, ignore_errors=True)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, metrics: dict[str, Any], snap: Path | None) -> None:
        """Queue one result (and the snapshot it carries, which the reporter deletes after use)."""
        self._raise()
        self._queue.put((metrics, snap))

    def finish(self, *, raise_error: bool = True) -> None:
        """Report what is queued, stop the thread, and raise its error unless told not to."""
        self._queue.put(None)
        self._thread.join()
        if raise_error:
            self._raise()


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
    config = params_config(params)
    remove_stale_scratch(include_own=True)  # Tune runs one trial at a time per worker
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{tune.get_context().get_trial_id()}-", dir=SCRATCH_ROOT))
    run_dir = scratch / "run"
    try:
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(str(run_dir))
        node_id = ray.get_runtime_context().get_node_id()  # node_ip alone cannot tell nodes of one host apart
        reporter = _Reporter()
        try:
            for result in fit(config, run_dir):
                # the snapshot is taken here, between epochs, while no checkpoint write runs
                reporter.put({**result, "node_id": node_id}, snapshot(run_dir) if result["checkpoint"] else None)
        except BaseException:
            reporter.finish(raise_error=False)  # the epochs before the failure still reach Tune
            raise
        reporter.finish()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
