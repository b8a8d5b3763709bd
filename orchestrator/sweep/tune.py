"""A validated :class:`~orchestrator.spec.SweepSpec` → a Ray Tune run, and its resume.

Checkpoints: Tune keeps each trial's two newest (no score attribute), so the experiment state
Tune snapshots after every checkpoint always names one that still exists, whatever moment
the driver is killed at; the best epoch's weights travel inside every checkpoint as
``best.pt``. When the sweep's ``fit`` returns, finished trials' older checkpoints are deleted:
what stays is the final one (best weights, predictions, Table 3 scores).
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

from attnmel.errors import UserError
from attnmel.version import code_version, environment
from orchestrator.sweep import folders, stop, storage
from orchestrator.sweep.grid import params_config, tune_params
from orchestrator.sweep.page_refresh import PageRefresh, write_final_page
from orchestrator.sweep.preflight import check_address, check_inputs, check_resources, join_hint
from orchestrator.sweep.spec import METRIC, MODE, SweepSpec, spec_from_dict, spec_to_dict, sweep_path
from orchestrator.sweep.trainable import remove_stale_scratch, train_trial

__all__ = ["TuneSettings", "tune_settings", "trial_resources", "build_tuner", "connect", "run_sweep", "resume_sweep", "SweepProgress"]

KEEP_CHECKPOINTS = 2  # see the module docstring: one fewer and a kill can orphan the state


def _point_label(point: dict[str, Any]) -> str:
    parts = [point.get("variant", "?"), f"seed {point.get('runtime.seed', 0)}"]
    for key, value in point.items():
        if key not in ("variant", "runtime.seed"):
            parts.append(f"{key.split('.')[-1]}={value:g}" if isinstance(value, float) else f"{key.split('.')[-1]}={value}")
    return " ".join(parts)


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
    """One line per trial start, epoch, end and error, instead of Tune's periodic tables.
    Pickled into the experiment state with the run config, so a resumed sweep prints the same."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._epochs: dict[str, int] = {}  # trial id → epochs it runs (a grid may vary optim.epochs)

    def setup(self, **info: Any) -> None:
        stop.listen()  # Tune has installed its stop handler by now: remember a request it takes

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

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
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
    return folders.trial_dirname(trial.trial_id, _point_label(trial.config.get("point", {})))


@dataclass(frozen=True)
class TuneSettings:
    """Everything a Tuner is built from (a pure function of the spec; starts nothing)."""

    param_space: dict[str, Any]
    tune_config: tune.TuneConfig
    run_config: tune.RunConfig
    total: int  # trials the sweep will run


def tune_settings(spec: SweepSpec) -> TuneSettings:
    """The Tune configuration of ``spec``: an explicit grid of trial points, or Optuna over the
    search space; ASHA when asked; both scoring the best validation AUC so far."""
    if spec.search is None:
        param_space = tune_params(spec.train, tune.grid_search(spec.points))
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
        callbacks=[SweepProgress(spec.n_trials), PageRefresh(sweep_path(spec))],
        verbose=0,  # SweepProgress prints one line per event instead
    )
    return TuneSettings(param_space, tune_config, run_config, spec.n_trials)


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """What Ray reserves for each trial (fractional GPUs let trials share a card)."""
    return {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus}


def _trainable(spec: SweepSpec, function: Callable[[dict[str, Any]], None] = train_trial) -> Any:
    return tune.with_resources(function, trial_resources(spec))


def build_tuner(
    spec: SweepSpec,
    *,
    trainable: Callable[[dict[str, Any]], None] = train_trial,
    extra_params: Mapping[str, Any] | None = None,
    callbacks: Sequence[tune.Callback] = (),
) -> tune.Tuner:
    """The Tuner for ``spec`` (constructing it writes ``tuner.pkl`` into the sweep folder).

    The keywords exist for measurements of the sweep machinery itself (``benchmarks/``): another
    function ``trainable`` run with the same resources, grid, concurrency and checkpoint
    settings, ``extra_params`` added to every trial's parameters, ``callbacks`` beside the
    sweep's own (progress lines, page refresh). A sweep never sets them.
    """
    # Tune snapshots the experiment state whenever a trial checkpoints; that is intended
    # (it keeps the state consistent with the kept checkpoints), so no warning about it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    settings = tune_settings(spec)
    run_config = settings.run_config
    if callbacks:
        run_config = replace(run_config, callbacks=[*run_config.callbacks, *callbacks])
    return tune.Tuner(
        _trainable(spec, trainable), param_space={**settings.param_space, **(extra_params or {})},
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


def _finish(sweep_dir: str, results: Any, started: float, *, figures: bool = False) -> int:
    """Write the tables, print where they are and a summary; 1 when any trial errored."""
    wall = time.monotonic() - started
    errors = len(results.errors)
    print(f"sweep {sweep_dir}: {len(results)} trials, {errors} errored, {wall:.0f} s wall")
    if storage.is_uri(sweep_dir):
        print(f"tables: copy the sweep locally and run `attnmel report build DIR` ({sweep_dir} is remote)")
        return 1 if errors else 0
    from orchestrator.results.build import write_tables
    from orchestrator.results.summary import summary_model, summary_report, write_figures

    paths, built = write_tables(sweep_dir)
    print(f"tables: {', '.join(str(p) for p in paths.values())}")
    summary = summary_model(built)  # printed here and shown on the page: computed once
    text, problem = summary_report(built, model=summary)
    print(text + (problem or ""))
    if figures:
        write_figures(sweep_dir, built)
    write_final_page(sweep_dir, built, summary)
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
    spec: SweepSpec, target: str, *, address: str | None, num_cpus: int | None, local: bool, figures: bool = False
) -> int:
    started_ray, ended = connect(address, num_cpus=num_cpus), set()
    try:
        if local:
            check_resources(spec, ray)
        storage.write_json(f"{target}/{folders.SWEEP_META}", {
            "name": spec.name,
            "spec": spec_to_dict(spec),
            "code_version": code_version(),
            "environment": environment(),  # package versions and CPU/GPU of the driver (README: Reproducibility)
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })  # fmt: skip
        print(f"sweep {spec.name}: storage {target}")
        if stop.requested():
            return _stopped(target)
        started = time.monotonic()
        results = build_tuner(spec).fit()
        ended = _trial_ids(results)
        _prune_finished(results)
        if stop.requested():
            return _stopped(target)
        return _finish(target, results, started, figures=figures)
    finally:
        if started_ray:
            ray.shutdown()
        remove_stale_scratch(trial_ids=ended)  # what this node's workers could not clean up


def _runs_here(address: str | None) -> bool:
    return not (address or os.environ.get("RAY_ADDRESS")) and not ray.is_initialized()


def run_sweep(
    spec: SweepSpec, *, address: str | None = None, num_cpus: int | None = None, unique: bool = False,
    figures: bool = False,
) -> int:
    """Validate everything, run the sweep, write the tables (and with ``figures`` the curves and
    sensitivity PNGs); returns the exit code.

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
    return _start(spec, target, address=address, num_cpus=num_cpus, local=local, figures=figures)


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


def resume_sweep(path: str, *, address: str | None = None, num_cpus: int | None = None) -> int:
    """Continue an interrupted sweep: unfinished and errored trials resume from their latest
    checkpoints; finished trials are kept as they are. A sweep that never started a trial
    is started afresh in the same folder."""
    path = path if storage.is_uri(path) else str(Path(path).expanduser().resolve())
    meta = f"{path}/{folders.SWEEP_META}"
    if not storage.exists(meta):
        raise UserError(f"{path} is not a sweep folder (no {folders.SWEEP_META})")
    try:
        spec = spec_from_dict(storage.read_json(meta)["spec"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{meta} is damaged ({type(exc).__name__}: {exc})") from None
    if _never_started(path):
        print(f"sweep {spec.name} never started a trial; starting it in {path}")
        for name in storage.list_dir(path):  # Tune's files of the attempt that died (tuner.pkl, ...)
            if name not in (folders.SWEEP_META, folders.SLURM_DIR):
                storage.remove(f"{path}/{name}")
        local = _runs_here(address)
        check_inputs(spec, local=local)
        return _start(spec, path, address=address, num_cpus=num_cpus, local=local)
    started_ray, ended = connect(address, num_cpus=num_cpus), set()
    try:
        if not tune.Tuner.can_restore(path):
            raise UserError(f"{path} holds no Tune experiment state to resume")
        _refill_deleted_checkpoints(path)
        tuner = tune.Tuner.restore(
            path, trainable=_trainable(spec), resume_unfinished=True, resume_errored=True, restart_errored=False,
        )  # fmt: skip
        if stop.requested():
            return _stopped(path)
        print(f"resuming sweep {spec.name} from {path}")
        started = time.monotonic()
        results = tuner.fit()
        ended = _trial_ids(results)
        _prune_finished(results)
        if stop.requested():
            return _stopped(path)
        return _finish(path, results, started)
    finally:
        if started_ray:
            ray.shutdown()
        remove_stale_scratch(trial_ids=ended)
