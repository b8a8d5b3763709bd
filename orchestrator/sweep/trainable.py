"""The only code that runs inside Ray workers: one sweep trial is one ``attnmel.train.fit`` run.

The run directory is private scratch space on the trial's node; the Tune checkpoint is the
only state that outlives an attempt, so a retried or restored trial starts from a clean
directory filled from its latest checkpoint and ``fit`` resumes from it. A checkpoint goes
to Tune only with the results after which ``fit`` completed a resumable state
(``runtime.checkpoint_every``) and at the end, when it holds the best weights, the predictions
and Table 3 scores only. Results reach Tune from a second thread, so neither Tune's copy of a
checkpoint nor its result hand-over holds up the next epoch.

Storage faults end a trial with one line (:class:`~attnmel.errors.StorageError`): a full or
read-only storage (Tune's copy of a checkpoint into it) or scratch disk (``fit``'s own writes),
and, before any work, a storage that cannot hold what the trial will write. A trial whose
params do not make a config, or whose restored checkpoint arrived damaged, is refused before
it trains.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import tempfile
import socket
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import ray
from ray import tune

from attnmel.atomic import storage_error
from attnmel.errors import StorageError, UserError, format_bytes
from orchestrator.layout import folders
from orchestrator.layout.params import params_config
from orchestrator.sweep import storage

__all__ = ["SCRATCH_ROOT", "train_trial", "remove_stale_scratch", "snapshot", "point_key",
           "RESUME_FROM", "placement"]

RESUME_FROM = "resume_from"  # sweep.json: point_key → checkpoint folder (set by `sweep resume --from-trials`)

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


def point_key(point: dict[str, Any]) -> str:
    """A grid point as one canonical string (the key of ``sweep.json``'s ``resume_from``)."""
    return json.dumps(point, sort_keys=True)


def _config(params: dict[str, Any]) -> Any:
    """The trial's config; params that do not make one (``{}`` from a damaged experiment state)
    are refused before anything runs."""
    try:
        return params_config(params)
    except UserError as exc:
        raise UserError(f"refused to start a trial whose params do not validate: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        shown = json.dumps(params, default=str)[:120]
        raise UserError(f"refused to start a trial whose params are not a trial config ({type(exc).__name__}: "
                        f"{exc}; params {shown})") from None  # fmt: skip


def _check_room(config: Any, sweep_dir: str | None) -> None:
    """Refuse to start when the storage cannot take this trial's checkpoints: after a full
    storage stopped a sweep, trials still queued end at once instead of at their first copy."""
    if not sweep_dir or storage.is_uri(sweep_dir):
        return
    problem = storage.writable_problem(sweep_dir)
    if problem is not None:
        raise StorageError(sweep_dir, problem, storage.free_space(sweep_dir))
    free, (_, running) = storage.free_space(sweep_dir), storage.trial_need(config)
    if free is not None and free < running:
        raise StorageError(sweep_dir, "no space left on device", free,
                           f": not started, a trial needs up to {format_bytes(running)}")


def _restore(checkpoint: Any, run_dir: Path, source: str) -> None:
    """Fill ``run_dir`` from a checkpoint, refusing one that arrived damaged (cut by a full disk)."""
    from attnmel import checkpoint as ckpt

    checkpoint.to_directory(str(run_dir))
    if ckpt.is_finished(run_dir):
        problem = ckpt.final_problem(run_dir)
    elif (run_dir / ckpt.LAST).exists():
        problem = ckpt.resume_problem(run_dir)
    else:
        problem = None  # an empty stand-in for a deleted folder: the trial starts over
    if problem is not None:
        raise UserError(f"its checkpoint {source} is damaged ({problem}); `attnmel sweep resume --restart-errored` "
                        "starts errored trials over")  # fmt: skip


def _resume_source(params: dict[str, Any], sweep_dir: str | None) -> Any:
    """The checkpoint ``sweep resume --from-trials`` chose for this trial's point, if any."""
    if not sweep_dir:
        return None
    try:
        chosen = storage.read_json(f"{sweep_dir}/{folders.SWEEP_META}").get(RESUME_FROM, {})
    except (OSError, ValueError):
        return None
    relative = chosen.get(point_key(params.get("point", {}))) if isinstance(chosen, dict) else None
    return f"{sweep_dir}/{relative}" if relative else None


def placement(config: Any) -> dict[str, Any]:
    """Where this trial runs (``folders.PLACEMENT``): node, the GPU ids and the CPU/GPU shares
    Ray gave it. Refused with one line before any work: a trial whose ``CUDA_VISIBLE_DEVICES``
    is not the GPUs Ray gave it, one asked to compute on a GPU it was not given, and one that
    was given a GPU but finds no CUDA (unless ``runtime.device: cpu`` says so on purpose)."""
    import torch

    context = ray.get_runtime_context()
    held = context.get_assigned_resources()
    gpu_ids = [str(i) for i in ray.get_gpu_ids()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    host, address = socket.gethostname(), ray.util.get_node_ip_address()
    on = f"on {host} ({address})"
    if gpu_ids and visible is not None and visible.split(",") != gpu_ids:
        raise UserError(f"Ray gave this trial GPU(s) {','.join(gpu_ids)} {on} but "
                        f"CUDA_VISIBLE_DEVICES is {visible!r}; unset it where Ray's workers start")
    device = config.runtime.device
    if device != "cpu" and gpu_ids and not torch.cuda.is_available():
        raise UserError(f"Ray gave this trial GPU {','.join(gpu_ids)} {on} but CUDA finds no GPU "
                        "there; set train.runtime.device: cpu to run trials that hold GPUs on the "
                        "CPU, or resources.gpus: 0")
    index = torch.device(device).index if device.startswith("cuda") else None
    if device.startswith("cuda") and (not gpu_ids or (index or 0) >= len(gpu_ids)):
        raise UserError(f"runtime.device is {device!r} but Ray gave this trial {len(gpu_ids)} "
                        f"GPU(s) {on}; use runtime.device: auto (its first GPU) or more GPUs")
    return {
        "hostname": host, "node_ip": address, "node_id": context.get_node_id(),
        "gpu_ids": ",".join(gpu_ids), "cuda_visible_devices": visible,
        "gpus": float(held.get("GPU", 0.0)), "cpus": float(held.get("CPU", 0.0)),
        "started_at": time.time(),
    }


def train_trial(params: dict[str, Any], sweep_dir: str | None = None, check_room: bool = True) -> None:
    """Tune function trainable: one ``fit`` run, reported epoch by epoch. ``sweep_dir`` (the
    sweep's storage folder) lets it name the storage when it is full and, with ``check_room``
    (off under ``--force``), refuse to start when the storage cannot take its checkpoints."""
    from attnmel.train import fit

    # Tune logs every checkpoint upload at INFO; the progress lines already say each epoch
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    config = _config(params)
    where = f"{sweep_dir}/{Path(tune.get_context().get_trial_dir()).name}" if sweep_dir else "the sweep's storage"
    remove_stale_scratch(include_own=True)  # Tune runs one trial at a time per worker
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{tune.get_context().get_trial_id()}-", dir=SCRATCH_ROOT))
    run_dir = scratch / "run"
    try:
        ran_on = placement(config)
        if check_room:
            _check_room(config, sweep_dir)
        checkpoint, source = tune.get_checkpoint(), "from Tune"
        if checkpoint is None and (chosen := _resume_source(params, sweep_dir)) is not None:
            checkpoint, source = tune.Checkpoint.from_directory(chosen), chosen
        if checkpoint is not None:
            _restore(checkpoint, run_dir, checkpoint.path if source == "from Tune" else source)
        reporter = _Reporter()
        try:
            for result in fit(config, run_dir):
                # the snapshot is taken here, between epochs, while no checkpoint write runs
                row = {**result, **ran_on, "reported_at": time.time()}
                reporter.put(row, snapshot(run_dir) if result["checkpoint"] else None)
        except BaseException:
            reporter.finish(raise_error=False)  # the epochs before the failure still reach Tune
            raise
        reporter.finish()
    except Exception as exc:  # one line for a full or read-only disk, whichever write hit it
        problem = storage_error(exc, where)
        if problem is None or problem is exc:
            raise
        raise problem from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
