"""A validated :class:`~orchestrator.spec.SweepSpec` → a Ray Tune run, and its resume.

One trial is :func:`attnmel.train.fit` driven by :func:`train_trial`, a thin adapter that
reports every epoch to Tune with a checkpoint of the run directory. Tune keeps the best
checkpoint by validation AUC plus the latest, retries a failed trial from its latest
checkpoint, and writes each trial's ``params.json``/``result.json``/``error.txt`` under
``<storage>/<sweep>/``, which :mod:`orchestrator.report` turns into Parquet tables at the end.

Everything the user can get wrong (spec, data layout, ROI files, weights, Ray address,
resources, an existing sweep folder) is checked before the storage folder is created.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection, Iterator

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from attnmel.errors import UserError
from orchestrator.spec import (
    METRIC,
    MODE,
    SweepSpec,
    is_uri,
    spec_from_dict,
    spec_to_dict,
    split_variant,
    sweep_path,
    trial_config,
    trial_points,
)

__all__ = [
    "train_trial",
    "remove_stale_scratch",
    "preflight",
    "connect",
    "build_tuner",
    "run_sweep",
    "resume_sweep",
    "SweepProgress",
]

# --------------------------------------------------------------------------- the trainable


@contextmanager
def _snapshot(run_dir: Path) -> Iterator[Path]:
    """A checkpoint folder of ``run_dir``: hard links (no copy) to last.pt and the small run
    files. Tune copies it to storage inside ``report``. best.pt stays out: Tune keeps the
    checkpoint of the best validation-AUC epoch, whose last.pt is that best model."""
    snap = Path(tempfile.mkdtemp(prefix="ckpt-", dir=run_dir.parent))
    try:
        for item in run_dir.iterdir():
            if not item.is_file() or item.name.endswith(".tmp") or item.name == "best.pt":
                continue
            try:
                os.link(item, snap / item.name)
            except OSError:  # another filesystem or no hard links: copy
                shutil.copy2(item, snap / item.name)
        yield snap
    finally:
        shutil.rmtree(snap, ignore_errors=True)


# Trials keep their run directory here, named "<worker pid>-<trial id>-...". Tune may end a
# worker process while a finished trial's thread still sits in `report`, so its cleanup cannot
# be relied on; the next trial on the node (and the driver, at the end) removes what is left.
SCRATCH_ROOT = Path(tempfile.gettempdir()) / "attnmel-trials"


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
    """Tune function trainable: one ``fit`` run, reported epoch by epoch with a checkpoint.

    The run directory is private scratch space on the trial's node; the Tune checkpoint is the
    only state that outlives an attempt, so a retried or restored trial starts from a clean
    directory filled from its latest checkpoint and ``fit`` resumes from its ``last.pt``.
    """
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
            with _snapshot(run_dir) as snap:
                tune.report({**result, "node_id": node_id}, checkpoint=tune.Checkpoint.from_directory(str(snap)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- progress


def _point_label(point: dict[str, Any]) -> str:
    parts = [point.get("variant", "?"), f"seed {point.get('runtime.seed', 0)}"]
    for key, value in point.items():
        if key not in ("variant", "runtime.seed"):
            parts.append(f"{key.split('.')[-1]}={value:g}" if isinstance(value, float) else f"{key.split('.')[-1]}={value}")
    return " ".join(parts)


class SweepProgress(tune.Callback):
    """One line per trial start, epoch, end and error, instead of Tune's periodic tables.

    Pickled into the experiment state with the run config, so a resumed sweep prints the same.
    """

    def __init__(self, total: int) -> None:
        self.total = total

    @staticmethod
    def _tag(trial: Any) -> str:
        return f"[{trial.trial_id}] {_point_label(trial.config.get('point', {}))}"

    def _done(self, trials: list, trial: Any) -> str:
        done = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")} | {trial.trial_id}
        return f"{len(done)}/{self.total} trials done"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"{self._tag(trial)}: started", flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        nan = float("nan")
        print(
            f"{self._tag(trial)}: epoch {result.get('epoch')}/{trial.config['train']['optim']['epochs']} "
            f"val AUC {result.get('val_auc', nan):.3f} (best {result.get('best_val_auc', nan):.3f} "
            f"@ {result.get('best_epoch')}), {result.get('epoch_seconds', nan):.1f} s",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"{self._tag(trial)}: finished ({self._done(trials, trial)})", flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"{self._tag(trial)}: ERROR after {trial.run_metadata.num_failures} attempts, "
              f"see {trial.path}/error.txt ({self._done(trials, trial)})", flush=True)  # fmt: skip


# --------------------------------------------------------------------------- checks before work


def preflight(spec: SweepSpec, *, local: bool) -> None:
    """Data layout, ROI files for the regularised variants and (on the machine that runs the
    trials) model weights; writes the demo's synthetic dataset when the spec asks for one."""
    from attnmel.data import load_splits, roi_available, write_synthetic
    from attnmel.data.layout import file_problems
    from attnmel.data.roi import missing_roi_source

    root = Path(spec.dataset.root)
    if spec.dataset.synthetic is not None and not root.exists():
        write_synthetic(spec.dataset.name, root, **spec.dataset.synthetic)
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist (spec key 'dataset.root'; set it with --set dataset.root=DIR)")
    data = spec.train["data"]
    # One scan of the layout (raises on its first problem), then every file's header.
    splits = load_splits(spec.dataset.name, root, val_fraction=data["val_fraction"], val_seed=data["val_seed"])
    problems = file_problems([s for samples in splits.values() for s in samples], decode=False)
    if problems:
        more = f" (and {len(problems) - 1} more; see `attnmel data check`)" if len(problems) > 1 else ""
        raise UserError(f"dataset {root}: {problems[0]}{more}")
    train = splits["train"]
    roi_dir = Path(spec.dataset.roi_dir) if spec.dataset.roi_dir else None
    rois = {split_variant(v)[1] for v in spec.grid.variants} - {"none"}
    for roi in sorted(rois):
        missing = [s for s in train if not roi_available(s, roi, roi_dir)]
        if missing:
            raise UserError(
                f"ROI '{roi}' is missing for {len(missing)} of {len(train)} training images "
                f"(first: {missing_roi_source(missing[0], roi, roi_dir)}); drop the '+{roi}' variants or add the files"
            )
    model = spec.train["model"]
    if local and model["weights"] != "none":  # a cluster's nodes have their own weights cache
        from attnmel.models import check_weights

        check_weights(model["backbone"], model["weights"])


def _check_address(address: str) -> None:
    if address in ("auto", "local"):
        return
    if address.startswith(("http://", "https://")):
        raise UserError(
            f"--address {address} is a dashboard (Jobs API) address: use it with `attnmel sweep submit`; "
            "`sweep run` joins a cluster at HOST:6379 or ray://HOST:10001"
        )
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} must look like HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start an embedded Ray.

    Returns True when this call started Ray (so the caller shuts it down). A Ray session this
    process already holds (tests, notebooks) is reused as it is.
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_address(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except (ConnectionError, ray.exceptions.RaySystemError, ray.exceptions.AuthenticationError) as exc:
            raise UserError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        return True
    # The dashboard costs a core's worth of start-up on a laptop and nothing here needs it.
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


def _check_resources(spec: SweepSpec) -> None:
    """A trial that asks for more than this Ray has would wait forever: refuse now."""
    total = ray.cluster_resources()
    need = spec.resources
    if need.cpus > total.get("CPU", 0):
        raise UserError(
            f"each trial needs {need.cpus:g} CPUs (spec key 'resources.cpus') but this Ray has {total.get('CPU', 0):g}"
        )
    if need.gpus > total.get("GPU", 0):
        raise UserError(
            f"each trial needs {need.gpus:g} GPU (spec key 'resources.gpus') but this Ray has {total.get('GPU', 0):g}; "
            "use --smoke, --set resources.gpus=0, or --address a GPU cluster"
        )


# --------------------------------------------------------------------------- storage helpers


def _fs(path: str) -> tuple[Any, str]:
    import pyarrow.fs

    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), path


def _exists(path: str) -> bool:
    import pyarrow.fs

    fs, inner = _fs(path)
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def _write_json(path: str, data: dict[str, Any]) -> None:
    """Write atomically: a temporary file, then a rename (a plain PUT on object stores)."""
    fs, inner = _fs(path)
    fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    tmp = f"{inner}.tmp-{os.getpid()}"
    with fs.open_output_stream(tmp) as out:
        out.write(json.dumps(data, indent=2, sort_keys=True).encode())
    fs.move(tmp, inner)


def _read_json(path: str) -> dict[str, Any]:
    fs, inner = _fs(path)
    with fs.open_input_stream(inner) as handle:
        return json.loads(handle.read().decode())


# --------------------------------------------------------------------------- the Tuner


def _search_space(spec: SweepSpec) -> dict[str, Any]:
    """Optuna's space: searched distributions, plus grid lists as categorical choices."""
    point: dict[str, Any] = {
        "variant": tune.choice(list(spec.grid.variants)) if len(spec.grid.variants) > 1 else spec.grid.variants[0],
        "runtime.seed": tune.choice(list(spec.grid.seeds)) if len(spec.grid.seeds) > 1 else spec.grid.seeds[0],
    }
    for key, values in spec.grid.params.items():
        point[key] = tune.choice(list(values)) if len(values) > 1 else values[0]
    for key, dist in spec.search.space.items():
        name = f"loss.{key}" if key in ("lambda1", "lambda2") else key
        build = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}.get(dist.kind)
        point[name] = tune.choice(list(dist.values)) if dist.kind == "choice" else build(*dist.values)
    return point


def _dirname(trial: Any) -> str:
    point = trial.config.get("point", {})
    label = _point_label(point).replace(" ", "_").replace("+", "-").replace("=", "")
    return f"{trial.trial_id}_{label}"[:120]


def _trainable(spec: SweepSpec) -> Any:
    return tune.with_resources(train_trial, {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus})


def _run_config(spec: SweepSpec, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=spec.name,
        storage_path=spec.storage,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1,  # the best by validation AUC; Tune always keeps the latest as well
            checkpoint_score_attribute=METRIC,
            checkpoint_score_order=MODE,
        ),
        failure_config=tune.FailureConfig(max_failures=spec.retries),
        callbacks=callbacks,
        verbose=0,  # SweepProgress prints one line per event instead
    )


def build_tuner(spec: SweepSpec) -> tune.Tuner:
    """The Tuner for ``spec``: an explicit grid of trial points, or Optuna over the search space."""
    # Tune snapshots the experiment state whenever a trial replaces its kept checkpoint, i.e.
    # every epoch here; that is intended (resume loses at most one epoch), so no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if spec.search is None:
        points = trial_points(spec)
        param_space = {"train": spec.train, "point": tune.grid_search(points)}
        total, search_alg, num_samples = len(points), None, 1
    else:
        from ray.tune.search.optuna import OptunaSearch

        param_space = {"train": spec.train, "point": _search_space(spec)}
        total, num_samples = spec.search.num_samples, spec.search.num_samples
        search_alg = OptunaSearch(metric=METRIC, mode=MODE, seed=spec.search.seed)
    scheduler = None
    if spec.scheduler is not None:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",  # one report per epoch
            max_t=spec.train["optim"]["epochs"],
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return tune.Tuner(
        _trainable(spec),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            num_samples=num_samples,
            search_alg=search_alg,
            scheduler=scheduler,
            max_concurrent_trials=spec.max_concurrent,
            trial_dirname_creator=_dirname,
            # a worker that ran one trial runs the next: torch and the model code stay imported
            reuse_actors=True,
        ),
        run_config=_run_config(spec, [SweepProgress(total)]),
    )


# --------------------------------------------------------------------------- run and resume


def _finish(sweep_dir: str, results: Any, started: float) -> int:
    """Write the tables, print where they are and a summary; 1 when any trial errored."""
    wall = time.monotonic() - started
    errors = len(results.errors)
    print(f"sweep {sweep_dir}: {len(results)} trials, {errors} errored, {wall:.0f} s wall")
    if is_uri(sweep_dir):
        print(f"tables: copy the sweep locally and run `attnmel report build DIR` ({sweep_dir} is remote)")
    else:
        from orchestrator.paper_table import format_summary, summarize
        from orchestrator.report import write_tables

        trials_file, epochs_file = write_tables(sweep_dir)
        print(f"tables: {trials_file} and {epochs_file}")
        import pandas as pd

        print(format_summary(*summarize(pd.read_parquet(trials_file))))
    return 1 if errors else 0


def _trial_ids(results: Any) -> set[str]:
    return {str(r.metrics["trial_id"]) for r in results if r.metrics and "trial_id" in r.metrics}


def _unique_name(spec: SweepSpec) -> SweepSpec:
    base, n = spec.name, 2
    while _exists(sweep_path(spec)):
        spec = replace(spec, name=f"{base}-{n}")
        n += 1
    return spec


def run_sweep(spec: SweepSpec, *, address: str | None = None, num_cpus: int | None = None, unique: bool = False) -> int:
    """Validate everything, run the sweep, write the tables; returns the exit code.

    ``address`` (or ``RAY_ADDRESS``) joins a running cluster, else an embedded Ray with
    ``num_cpus`` CPUs starts here; a Ray session this process already holds is used as is.
    """
    if unique:
        spec = _unique_name(spec)
    target = sweep_path(spec)
    if _exists(target):
        raise UserError(f"sweep folder {target} exists: continue it with `attnmel sweep resume {target}`, "
                        "or pick a new name (--unique, or --set name=...)")  # fmt: skip
    local = not (address or os.environ.get("RAY_ADDRESS")) and not ray.is_initialized()
    preflight(spec, local=local)
    started_ray, ended = connect(address, num_cpus=num_cpus), set()
    try:
        if local:
            _check_resources(spec)
        _write_json(f"{target}/sweep.json", {
            "name": spec.name,
            "spec": spec_to_dict(spec),
            "code_version": _code_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })  # fmt: skip
        print(f"sweep {spec.name}: storage {target}")
        started = time.monotonic()
        results = build_tuner(spec).fit()
        ended = _trial_ids(results)
        return _finish(target, results, started)
    finally:
        if started_ray:
            ray.shutdown()
        remove_stale_scratch(trial_ids=ended)  # what this node's workers could not clean up


def resume_sweep(path: str, *, address: str | None = None, num_cpus: int | None = None) -> int:
    """Continue an interrupted sweep: unfinished and errored trials resume from their latest
    checkpoints; finished trials are kept as they are."""
    path = path if is_uri(path) else str(Path(path).expanduser().resolve())
    if not _exists(f"{path}/sweep.json"):
        raise UserError(f"{path} is not a sweep folder (no sweep.json)")
    spec = spec_from_dict(_read_json(f"{path}/sweep.json")["spec"])
    started_ray, ended = connect(address, num_cpus=num_cpus), set()
    try:
        if not tune.Tuner.can_restore(path):
            raise UserError(f"{path} holds no Tune experiment state to resume (did the sweep start any trial?)")
        tuner = tune.Tuner.restore(
            path,
            trainable=_trainable(spec),
            resume_unfinished=True,
            resume_errored=True,
            restart_errored=False,
        )
        print(f"resuming sweep {spec.name} from {path}")
        started = time.monotonic()
        results = tuner.fit()
        ended = _trial_ids(results)
        return _finish(path, results, started)
    finally:
        if started_ray:
            ray.shutdown()
        remove_stale_scratch(trial_ids=ended)


def _code_version() -> str:
    from attnmel.train import code_version

    return code_version()
