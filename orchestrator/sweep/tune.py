"""A validated :class:`~orchestrator.spec.SweepSpec` → a Ray Tune run, and its resume.

Checkpoints: Tune keeps each trial's two newest (no score attribute), so the experiment state
Tune snapshots after every checkpoint always names one that still exists, whatever moment
the driver is killed at; the best epoch's weights travel inside every checkpoint as
``best.pt``. When the sweep's ``fit`` returns, finished trials' older checkpoints are deleted:
what stays is the final one (best weights, predictions, Table 3 scores).

Storage: before the first trial the sweep's storage must have room for what its trials will
hold (:func:`orchestrator.sweep.preflight.check_storage_space`, ``--force`` to skip); a full or
read-only storage while it runs stops it with one line per trial and a summary saying how to go
on (:mod:`orchestrator.sweep.storage_watch`); a resume checks Tune's saved state first and never
lets Tune start the sweep over (:mod:`orchestrator.sweep.recover`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from attnmel.errors import UserError, format_bytes
from attnmel.version import code_version, environment
from orchestrator.layout import folders
from orchestrator.layout.params import params_config, trial_config, tune_params
from orchestrator.layout.status import TrialStatus
from orchestrator.sweep import node_watch, recover, stop, storage, storage_watch
from orchestrator.sweep.page_refresh import PageRefresh, write_final_page
from orchestrator.sweep.preflight import check_address, check_inputs, check_resources, check_storage_space, join_hint
from orchestrator.sweep.preflight import cpu_with_gpus, trials_at_once
from orchestrator.sweep.reporting import Reporting
from orchestrator.sweep.spec import METRIC, MODE, SweepSpec, spec_from_dict, spec_to_dict, sweep_path
from orchestrator.sweep.trainable import RESUME_FROM, point_key, remove_stale_scratch, train_trial

__all__ = ["TuneSettings", "tune_settings", "trial_resources", "build_tuner", "connect", "run_sweep", "resume_sweep", "SweepProgress"]

KEEP_CHECKPOINTS = folders.KEEP_CHECKPOINTS  # see the module docstring


def _prune_finished(results: Any) -> None:
    """Keep only the newest checkpoint of each finished trial: its final artefacts.

    Run once ``fit`` has returned, when Tune's saved state names the final checkpoints; while
    the sweep runs, the state may still name a finished trial's previous one.
    """
    for result in results:
        if result.error is not None or not (result.metrics or {}).get("done"):
            continue
        checkpoints = [name for name in storage.list_dir(result.path) if name.startswith(folders.CHECKPOINT_PREFIX)]
        for name in checkpoints[:-1]:
            try:
                storage.remove_dir(f"{result.path}/{name}")
            except OSError as exc:  # storage hiccup: the extra checkpoint only costs space
                print(f"could not prune {result.path}/{name} ({exc})", flush=True)


class SweepProgress(tune.Callback):
    """One line per trial start, epoch, end and error, instead of Tune's periodic tables; a
    trial that failed on a full or read-only storage stops the sweep (see
    :mod:`~orchestrator.sweep.storage_watch`). Pickled into the experiment state with the run
    config, so a resumed sweep prints the same."""

    def __init__(self, total: int, sweep_dir: str | None = None) -> None:
        self.total = total
        self.sweep_dir = sweep_dir
        self._epochs: dict[str, int] = {}  # trial id → epochs it runs (a grid may vary optim.epochs)
        self._nodes = node_watch.NodeWatch()  # nodes under failed trials, named once when lost

    @staticmethod
    def _tag(trial: Any) -> str:
        return f"[{trial.trial_id}] {folders.point_label(trial.config.get('point', {}))}"

    def _done(self, trials: list, trial: Any) -> str:
        ended = (TrialStatus.TERMINATED, TrialStatus.ERROR)  # Tune's names for a trial that finished or failed
        done = {t.trial_id for t in trials if t.status in ended} | {trial.trial_id}
        return f"{len(done)}/{self.total} trials done"

    def setup(self, **info: Any) -> None:
        """Before the first trial: remember a stop request Tune takes (it has installed its
        handler by now), and refuse to go on when Tune failed to read the saved state and is
        about to start the sweep over (it logs that, then carries on)."""
        stop.listen()
        if storage_watch.restore_failed() is not None:
            raise UserError("Tune could not restore the saved experiment state")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"{self._tag(trial)}: started", flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        nan = float("nan")
        if trial.trial_id not in self._epochs:
            self._epochs[trial.trial_id] = params_config(trial.config).optim.epochs
        print(
            f"{self._tag(trial)}: epoch {result.get('epoch')}/{self._epochs[trial.trial_id]} "
            f"val AUC {result.get('val_auc', nan):.3f} (best {result.get('best_val_auc', nan):.3f} "
            f"@ {result.get('best_epoch')}), {result.get('epoch_seconds', nan):.1f} s",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        print(f"{self._tag(trial)}: finished ({self._done(trials, trial)})", flush=True)

    def _storage_failure(self, trial: Any) -> bool:
        line = storage_watch.failure_line(trial, getattr(self, "sweep_dir", None))  # older pickles lack it
        if line is None:
            return False
        print(f"{self._tag(trial)}: {line}", flush=True)
        storage_watch.stop_sweep(line)  # the first one ends the run here (StorageWall)
        return True

    def _node_lost(self, trial: Any | None = None) -> None:
        """One line per Ray node lost under a trial (older pickles lack the watch)."""
        watch = self.__dict__.setdefault("_nodes", node_watch.NodeWatch())
        for line in watch.trial_failed(trial) if trial is not None else watch.look():
            print(line, flush=True)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._node_lost()  # Ray may tell a node's death after Tune saw its trial fail

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._node_lost(trial)
        self._storage_failure(trial)  # a retry would hit the same wall: stop now rather than after it

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._node_lost(trial)
        if not self._storage_failure(trial):
            print(f"{self._tag(trial)}: ERROR after {trial.run_metadata.num_failures} attempts, "
                  f"see {trial.path}/error.txt ({self._done(trials, trial)})", flush=True)  # fmt: skip


def _search_space(spec: SweepSpec) -> dict[str, Any]:
    """Optuna's space: searched distributions, plus grid lists as categorical choices."""
    def choice(values: Any) -> Any:
        values = list(values)
        return tune.choice(values) if len(values) > 1 else values[0]

    point: dict[str, Any] = {"variant": choice(spec.grid.variants), "runtime.seed": choice(spec.grid.seeds)}
    point.update({key: choice(values) for key, values in spec.grid.params.items()})
    for key, dist in spec.search.space.items():
        build = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}.get(dist.kind)
        point[key] = tune.choice(list(dist.values)) if dist.kind == "choice" else build(*dist.values)
    return point


def _dirname(trial: Any) -> str:
    return folders.trial_dirname(trial.trial_id, folders.point_label(trial.config.get("point", {})))


@dataclass(frozen=True)
class TuneSettings:
    """Everything a Tuner is built from (a pure function of the spec; starts nothing)."""

    param_space: dict[str, Any]
    tune_config: tune.TuneConfig
    run_config: tune.RunConfig
    total: int  # trials the sweep will run


def tune_settings(spec: SweepSpec, *, points: list[dict[str, Any]] | None = None,
                  reporting: Reporting | None = None) -> TuneSettings:
    """The Tune configuration of ``spec``: an explicit grid of trial points (``points``, by
    default the spec's), or Optuna over the search space; ASHA when asked; both scoring the
    best validation AUC so far. With ``reporting``, its page is rewritten while the sweep runs."""
    if spec.search is None:
        points = spec.points if points is None else points
        param_space = tune_params(spec.train, tune.grid_search(points))
        search_alg, num_samples = None, 1
    else:
        from ray.tune.search.optuna import OptunaSearch

        param_space = tune_params(spec.train, _search_space(spec))
        num_samples = spec.search.num_samples
        search_alg = OptunaSearch(metric=METRIC, mode=MODE, seed=spec.search.seed)
    scheduler = None
    if spec.scheduler is not None:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",  # one report per epoch
            max_t=spec.train.optim.epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    tune_config = tune.TuneConfig(
        metric=METRIC, mode=MODE, num_samples=num_samples, search_alg=search_alg, scheduler=scheduler,
        max_concurrent_trials=spec.max_concurrent, trial_dirname_creator=_dirname,
        reuse_actors=True,  # a worker that ran one trial runs the next: torch and the model code stay imported
    )  # fmt: skip
    run_config = tune.RunConfig(
        name=spec.name,
        storage_path=spec.storage,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),  # newest first, no score
        failure_config=tune.FailureConfig(max_failures=spec.retries),
        callbacks=[SweepProgress(len(points) if points is not None else spec.n_trials, sweep_path(spec)),
                   *([PageRefresh(sweep_path(spec), reporting.page)] if reporting is not None else [])],
        verbose=0,  # SweepProgress prints one line per event instead
    )
    return TuneSettings(param_space, tune_config, run_config, len(points) if points is not None else spec.n_trials)


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """What Ray reserves for each trial (fractional GPUs let trials share a card)."""
    return {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus}


def _trainable(spec: SweepSpec, function: Callable[..., None] = train_trial, *, sweep_dir: str | None = None,
               force: bool = False) -> Any:  # fmt: skip
    """``function`` with the trial resources; the sweep's own ``train_trial`` also gets the sweep
    folder it checks for room (unless ``force``) and names when it is full."""
    if function is train_trial:
        function = tune.with_parameters(train_trial, sweep_dir=sweep_dir or sweep_path(spec), check_room=not force)
    return tune.with_resources(function, trial_resources(spec))


def build_tuner(
    spec: SweepSpec,
    *,
    points: list[dict[str, Any]] | None = None,
    force: bool = False,
    trainable: Callable[..., None] = train_trial,
    extra_params: Mapping[str, Any] | None = None,
    callbacks: Sequence[tune.Callback] = (),
    reporting: Reporting | None = None,
) -> tune.Tuner:
    """The Tuner for ``spec`` (constructing it writes ``tuner.pkl`` into the sweep folder);
    ``points`` replaces the spec's grid (``sweep resume --from-trials``); ``force``: trials
    start without checking the storage has room; ``reporting``: its page while the sweep runs.

    ``trainable``, ``extra_params`` and ``callbacks`` exist for measurements of the sweep
    machinery itself (``benchmarks/``): another function run with the same resources, grid,
    concurrency and checkpoint settings, parameters added to every trial's, callbacks beside the
    sweep's own (progress lines, page refresh). A sweep never sets them.
    """
    # Tune snapshots the experiment state whenever a trial checkpoints; that is intended
    # (it keeps the state consistent with the kept checkpoints), so no warning about it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    settings = tune_settings(spec, points=points, reporting=reporting)
    run_config = settings.run_config
    if callbacks:
        run_config = replace(run_config, callbacks=[*run_config.callbacks, *callbacks])
    return tune.Tuner(
        _trainable(spec, trainable, force=force), param_space={**settings.param_space, **(extra_params or {})},
        tune_config=settings.tune_config, run_config=run_config,
    )  # fmt: skip


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start an embedded Ray.

    Returns True when this call started Ray (so the caller shuts it down). A Ray session this
    process already holds (tests, notebooks) is reused as it is.
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except (ConnectionError, ray.exceptions.RaySystemError, ray.exceptions.AuthenticationError) as exc:
            raise UserError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}; {join_hint()}") from None
        return True
    # The dashboard costs a core's worth of start-up on a laptop and nothing here needs it.
    # address="local": always a new Ray of this process's own; without it ray.init() joins any
    # cluster a `ray start` left running on this machine, which is not what "embedded" means.
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


def _storage_stopped(spec: SweepSpec, sweep_dir: str, statuses: Sequence[str], cluster: Any) -> UserError:
    """The line a sweep stopped by a full or read-only storage ends with: what happened, how
    far it got, and what to do to finish it."""
    first = storage_watch.FAILURES[0]
    done = sum(status == TrialStatus.TERMINATED for status in statuses)
    if spec.search is None and not storage.is_uri(sweep_dir):
        finished = recover.finished_points(spec, Path(sweep_dir))
        remaining = [trial_config(spec.train, p) for p in spec.points if point_key(p) not in finished]
        done = spec.n_trials - len(remaining)
        need = storage.storage_need(remaining, trials_at_once(spec, cluster, len(remaining))) if remaining else 0
        free = storage.free_space(sweep_dir) or 0
        rest = f"the rest needs about {format_bytes(need)}"
        room = f"free about {format_bytes(max(need - free, 0))} more there ({rest})"
    else:
        rest, room = "", "free space there"
    if "read-only file system" in first or storage.writable_problem(sweep_dir) is not None:
        room = f"make the storage writable ({rest})" if rest else "make the storage writable"
    return UserError(f"the sweep stopped: {first}. {done} of {spec.n_trials} trials finished, the others keep their "
                     f"last checkpoints; {room}, then `attnmel sweep resume {sweep_dir}`")  # fmt: skip


def _finish(spec: SweepSpec, sweep_dir: str, results: Any, started: float, *, cluster: Any = None,
            figures: bool = False, reporting: Reporting | None = None) -> int:
    """With ``reporting``: write the tables, print where they are and a summary, then the
    figures and the page; 1 when any trial errored. A sweep that a full or read-only storage
    stopped ends with that one line (a ``UserError``)."""
    wall = time.monotonic() - started
    errors = len(results.errors) if results is not None else None
    if results is not None:
        print(f"sweep {sweep_dir}: {len(results)} trials, {errors} errored, {wall:.0f} s wall")
    if storage.is_uri(sweep_dir) or reporting is None:
        if storage.is_uri(sweep_dir):
            print(f"tables: copy the sweep locally and run `attnmel report build DIR` ({sweep_dir} is remote)")
        if storage_watch.FAILURES:
            raise _storage_stopped(spec, sweep_dir, (), cluster)
        return 1 if errors else 0
    written = reporting.tables(sweep_dir)
    if written.problem is not None:
        storage_watch.FAILURES.append(written.problem)
    if storage_watch.FAILURES:
        raise _storage_stopped(spec, sweep_dir, written.statuses, cluster)
    if figures:
        reporting.figures(sweep_dir, written)
    write_final_page(sweep_dir, reporting.page, written.tables, written.summary)
    if errors is None:
        errors = sum(status != TrialStatus.TERMINATED for status in written.statuses)
    return 1 if errors else 0


def _stopped(sweep_dir: str) -> int:
    """A sweep asked to stop (:mod:`orchestrator.sweep.stop`): Tune has saved its state; the
    tables wait for the end of the sweep."""
    print(f"sweep {sweep_dir}: stopped on request before its end; continue it with "
          f"`attnmel sweep resume {sweep_dir}`", flush=True)  # fmt: skip
    return stop.EXIT_STOPPED


def _trial_ids(results: Any) -> set[str]:
    return {str(r.metrics["trial_id"]) for r in results if r.metrics and "trial_id" in r.metrics}


def _unique_name(spec: SweepSpec) -> SweepSpec:
    base, n = spec.name, 2
    while storage.exists(sweep_path(spec)):
        spec = replace(spec, name=f"{base}-{n}")
        n += 1
    return spec


def _start(
    spec: SweepSpec, target: str, *, address: str | None, num_cpus: int | None, local: bool, figures: bool = False,
    force: bool = False, points: list[dict[str, Any]] | None = None, meta: dict[str, Any] | None = None,
    reporting: Reporting | None = None,
) -> int:  # fmt: skip
    started_ray, ended = connect(address, num_cpus=num_cpus), set()
    try:
        if local:
            check_resources(spec, ray)
        check_storage_space(spec, ray, points=points, force=force)
        storage.write_json(f"{target}/{folders.SWEEP_META}", {
            "name": spec.name,
            "spec": spec_to_dict(spec),
            "code_version": code_version(),
            "environment": environment(),  # package versions and CPU/GPU of the driver (README: Reproducibility)
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(meta or {}),
        })  # fmt: skip
        print(f"sweep {spec.name}: storage {target}")
        if (note := cpu_with_gpus(spec)) is not None:
            print(f"sweep {spec.name}: {note}")
        if stop.requested():
            return _stopped(target)
        started = time.monotonic()
        tuner = build_tuner(spec, points=points, force=force, reporting=reporting)
        results = storage_watch.watched_fit(tuner, target)
        return _ended(spec, target, results, started, figures=figures, ended=ended, reporting=reporting)
    finally:
        if started_ray:
            ray.shutdown()
        remove_stale_scratch(trial_ids=ended)  # what this node's workers could not clean up


def _ended(spec: SweepSpec, target: str, results: Any, started: float, *, figures: bool, ended: set[str],
           reporting: Reporting | None) -> int:
    """After ``fit``: prune finished trials (not after a storage failure: the state saved then
    may still name their older checkpoints), then the tables and the summary."""
    if results is not None:
        ended |= _trial_ids(results)  # in place: the caller's `finally` cleans up after these
        if not storage_watch.FAILURES:
            _prune_finished(results)
    if stop.requested() and not storage_watch.FAILURES:
        return _stopped(target)
    return _finish(spec, target, results, started, cluster=ray, figures=figures, reporting=reporting)


def _runs_here(address: str | None) -> bool:
    return not (address or os.environ.get("RAY_ADDRESS")) and not ray.is_initialized()


def run_sweep(
    spec: SweepSpec, *, address: str | None = None, num_cpus: int | None = None, unique: bool = False,
    figures: bool = False, force: bool = False, reporting: Reporting | None = None,
) -> int:
    """Validate everything, run the sweep and, with ``reporting`` (the CLI's), write the tables, the
    page (and with ``figures`` the curves and sensitivity PNGs); returns the exit code. ``force``
    starts even when the storage looks too small for the trials' checkpoints.

    ``address`` (or ``RAY_ADDRESS``) joins a running cluster, else an embedded Ray with
    ``num_cpus`` CPUs starts here; a Ray session this process already holds is used as is.
    """
    if unique:
        spec = _unique_name(spec)
    target = sweep_path(spec)
    # a folder holding only the Slurm launcher's files is the one its job is meant to start in
    if storage.exists(target) and storage.list_dir(target) != [folders.SLURM_DIR]:
        raise UserError(f"sweep folder {target} exists: continue it with `attnmel sweep resume {target}`, "
                        "or pick a new name (--unique, or --set name=...)")  # fmt: skip
    local = _runs_here(address)
    check_inputs(spec, local=local)
    return _start(spec, target, address=address, num_cpus=num_cpus, local=local, figures=figures, force=force,
                  reporting=reporting)


def _never_started(path: str) -> bool:
    """A sweep killed before Tune saved its first experiment state has nothing to restore."""
    return not any(name.startswith("experiment_state") for name in storage.list_dir(path))


def _refill_deleted_checkpoints(path: str) -> None:
    """Recreate, empty, the checkpoint folders Tune deleted after its last saved state.

    A driver killed between Tune registering a trial's new checkpoint (deleting the one that
    fell out of the newest two) and saving its state leaves a state that still lists the deleted
    folder; the resumed Tune then fails deleting it again and errors the trial. The newest folder
    the state names always exists (see KEEP_CHECKPOINTS), so only older ones, at most two below
    the oldest on disk, can be missing; empty stand-ins let Tune delete them as it expects.
    """
    for trial in storage.list_dir(path):
        names = [n for n in storage.list_dir(f"{path}/{trial}") if n.startswith(folders.CHECKPOINT_PREFIX)]
        numbers = sorted(int(n.rsplit("_", 1)[1]) for n in names if n.rsplit("_", 1)[1].isdigit())
        if not numbers:
            continue
        width = len(names[0].rsplit("_", 1)[1])
        for n in range(max(0, numbers[0] - KEEP_CHECKPOINTS), numbers[-1]):
            if n not in numbers:
                storage.make_dir(f"{path}/{trial}/{folders.CHECKPOINT_PREFIX}{n:0{width}d}")


def resume_sweep(
    path: str, *, address: str | None = None, num_cpus: int | None = None, restart_errored: bool = False,
    from_trials: bool = False, force: bool = False, reporting: Reporting | None = None,
) -> int:  # fmt: skip
    """Continue an interrupted sweep (``reporting`` as for :func:`run_sweep`): unfinished and errored trials resume from their latest
    checkpoints (``restart_errored``: errored ones start over); finished trials are kept as
    they are. A sweep that never started a trial is started afresh in the same folder.

    Tune's saved state is checked first and, when damaged, an earlier one used or the resume
    refused (:func:`~orchestrator.sweep.recover.choose_state`); ``from_trials`` rebuilds the
    trial list from ``sweep.json`` and the trial folders instead of Tune's state.
    """
    path = path if storage.is_uri(path) else str(Path(path).expanduser().resolve())
    meta = f"{path}/{folders.SWEEP_META}"
    if not storage.exists(meta):
        raise UserError(f"{path} is not a sweep folder (no {folders.SWEEP_META})")
    try:
        spec = spec_from_dict(storage.read_json(meta)["spec"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{meta} is damaged ({type(exc).__name__}: {exc})") from None
    if not storage.is_uri(path):  # the folder may have moved since: Tune writes where it is now
        spec = replace(spec, storage=str(Path(path).parent), name=Path(path).name)
    if _never_started(path) and not from_trials:
        print(f"sweep {spec.name} never started a trial; starting it in {path}")
        for name in storage.list_dir(path):  # Tune's files of the attempt that died (tuner.pkl, ...)
            if name not in (folders.SWEEP_META, folders.SLURM_DIR):
                storage.remove(f"{path}/{name}")
        local = _runs_here(address)
        check_inputs(spec, local=local)
        return _start(spec, path, address=address, num_cpus=num_cpus, local=local, force=force, reporting=reporting)
    if from_trials:
        return _rebuild(spec, path, address=address, num_cpus=num_cpus, restart=restart_errored, force=force,
                        reporting=reporting)
    remaining = None
    if not storage.is_uri(path):
        state = recover.choose_state(Path(path))
        for line in recover.damaged_finished(Path(path), state):
            print(f"attnmel: warning: {line}", flush=True)
        if spec.search is None:
            finished = recover.finished_points(spec, Path(path))
            remaining = [p for p in spec.points if point_key(p) not in finished]
    started_ray, ended = connect(address, num_cpus=num_cpus), set()
    try:
        if not tune.Tuner.can_restore(path):
            raise UserError(f"{path} holds no Tune experiment state to resume")
        check_storage_space(spec, ray, points=remaining, force=force)
        _refill_deleted_checkpoints(path)
        tuner = tune.Tuner.restore(
            path, trainable=_trainable(spec, sweep_dir=path, force=force), resume_unfinished=True, resume_errored=not restart_errored,
            restart_errored=restart_errored,
        )  # fmt: skip
        if stop.requested():
            return _stopped(path)
        print(f"resuming sweep {spec.name} from {path}")
        started = time.monotonic()
        return _ended(spec, path, storage_watch.watched_fit(tuner, path), started, figures=False, ended=ended,
                      reporting=reporting)
    finally:
        if started_ray:
            ray.shutdown()
        remove_stale_scratch(trial_ids=ended)


def _rebuild(spec: SweepSpec, path: str, *, address: str | None, num_cpus: int | None, restart: bool,
             force: bool, reporting: Reporting | None) -> int:
    """``sweep resume --from-trials``: keep the finished trials, set aside Tune's state and the
    folders of the rest, run the rest as new trials from their last intact checkpoints."""
    if storage.is_uri(path):
        raise UserError(f"--from-trials reads the trial folders: copy {path} to a local or shared filesystem first")
    sweep_dir = Path(path)
    plan = recover.plan_rebuild(spec, sweep_dir, restart=restart)
    print(f"rebuilding sweep {spec.name} from its trial folders: {len(plan.kept)} finished trial(s) kept, "
          f"{len(plan.rerun)} to run ({len(plan.resume_from)} from a checkpoint)", flush=True)  # fmt: skip
    local = _runs_here(address)
    check_inputs(spec, local=local)
    check_storage_space(spec, None, points=plan.rerun, force=force)  # before anything is moved
    resume_from = recover.apply_rebuild(plan, sweep_dir)
    if not plan.rerun:
        storage_watch.FAILURES.clear()  # no fit runs, so none of an earlier one's may count
        return _finish(spec, path, None, time.monotonic(), reporting=reporting)
    return _start(spec, path, address=address, num_cpus=num_cpus, local=local, force=force, points=plan.rerun,
                  meta={RESUME_FROM: resume_from}, reporting=reporting)
