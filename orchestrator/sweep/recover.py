"""What ``attnmel sweep resume`` continues from, checked before Tune reads it.

Tune restores an experiment from the newest ``experiment_state-<session>.json`` in the sweep
folder (one per driver session; earlier sessions' files stay). One cut short by a full disk
makes Tune log an error and start the experiment over, with a trial of an empty config, so the
state is read here first (defensively: it is Tune's format, read as JSON only). When the
newest does not parse, or names a trial whose config does not validate, the newest earlier
state that parses and knows every trial folder is used instead (the damaged session's files are
moved aside); when none does, the resume stops with one line pointing at ``--from-trials``.

``--from-trials`` (:func:`plan_rebuild`) rebuilds the trial list from the sweep's own
``sweep.json`` and trial folders: a grid point whose trial finished with a whole final
checkpoint is kept as it is; every other point runs again as a new trial, from the newest
intact resumable checkpoint any of its folders holds (or from its first epoch with
``--restart-errored``). What it replaces (Tune's session files, the old folders of re-run
points, folders of no point) goes into ``.superseded-<time>/`` in the sweep folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from attnmel.checkpoint import final_checkpoint, final_problem, resume_problem
from attnmel.errors import UserError
from orchestrator.layout import folders
from orchestrator.layout.params import params_config
from orchestrator.layout.status import TrialStatus
from orchestrator.sweep.spec import SweepSpec
from orchestrator.sweep.trainable import point_key

__all__ = ["SavedTrial", "read_state", "choose_state", "finished_points", "damaged_finished", "Rebuild", "plan_rebuild",
           "apply_rebuild"]  # fmt: skip

_STATE_PREFIX, _TUNER_FILE = "experiment_state-", "tuner.pkl"


@dataclass(frozen=True)
class SavedTrial:
    """One trial as Tune's saved experiment state records it."""

    trial_id: str
    status: str
    dirname: str | None
    config: dict[str, Any]


def read_state(path: Path) -> list[SavedTrial]:
    """The trials of a saved experiment state; ``ValueError`` saying what is wrong when it is cut
    short, not Tune's shape, lists no trial, or a trial's config does not validate."""
    text = path.read_text(errors="replace")
    if not text.strip():
        raise ValueError("empty")
    try:
        data = json.loads(text)
        entries = data["trial_data"]
    except json.JSONDecodeError:
        raise ValueError(f"not JSON ({len(text.encode()):,} bytes; cut short?)") from None
    except (KeyError, TypeError):
        raise ValueError("not an experiment state (no trial_data)") from None
    trials = []
    try:
        for entry in entries:
            state = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
            trials.append(SavedTrial(str(state["trial_id"]), str(state["status"]), state.get("relative_logdir"),
                                     state.get("config") or {}))  # fmt: skip
    except (KeyError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise ValueError(f"a trial entry is not Tune's ({type(exc).__name__})") from None
    if not trials:
        raise ValueError("lists no trial")
    for trial in trials:
        try:
            params_config(trial.config)
        except Exception as exc:  # noqa: BLE001  any failure means Tune would run a trial we refuse
            raise ValueError(f"trial {trial.trial_id}'s config does not validate ({type(exc).__name__}: {exc})") from None
    return trials


def _session(state: Path) -> str:
    return state.name[len(_STATE_PREFIX) : -len(".json")]


def _trial_folders(sweep_dir: Path) -> list[Path]:
    """Every trial folder: those with a ``params.json`` and those named by a trial id (Tune may
    have created one and been stopped before writing anything)."""
    found = set(folders.trial_dirs(sweep_dir))
    found |= {p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and folders.trial_id_of(p.name)}
    return sorted(found)


def _set_aside(sweep_dir: Path, paths: list[Path]) -> Path | None:
    """Move ``paths`` into a new ``.superseded-<time>/`` folder of the sweep; returns it."""
    if not paths:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    aside = sweep_dir / f"{folders.SUPERSEDED_PREFIX}{stamp}"
    aside.mkdir()
    for path in paths:
        shutil.move(str(path), aside / path.name)
    return aside


def _session_files(sweep_dir: Path, session: str) -> list[Path]:
    """Tune's files of one driver session (experiment state, searcher and callback states)."""
    return sorted(p for p in sweep_dir.iterdir() if p.is_file() and p.stem.endswith(f"-{session}"))


def choose_state(sweep_dir: Path) -> Path:
    """The experiment state ``sweep resume`` may hand to Tune (see the module docstring); an
    earlier one is made the newest by moving the damaged sessions' files aside."""
    hint = (f"`attnmel sweep resume --from-trials {sweep_dir}` rebuilds the trial list from sweep.json and the trial "
            "folders: finished trials are kept, the others run again from their last intact checkpoint "
            "(with --restart-errored: from their first epoch)")  # fmt: skip
    tuner = sweep_dir / _TUNER_FILE
    if not tuner.is_file() or tuner.stat().st_size == 0:
        raise UserError(f"cannot resume {sweep_dir}: Tune's {_TUNER_FILE} is {'empty' if tuner.is_file() else 'missing'}; "
                        f"nothing was run. {hint}")  # fmt: skip
    states = sorted(sweep_dir.glob(folders.EXPERIMENT_STATE), reverse=True)  # Tune takes the greatest name
    damaged: list[tuple[Path, str]] = []
    on_disk = {p.name for p in _trial_folders(sweep_dir)}
    for state in states:
        try:
            trials = read_state(state)
        except (OSError, ValueError) as exc:
            damaged.append((state, str(exc)))
            continue
        unknown = sorted(on_disk - {t.dirname for t in trials})
        if damaged and unknown:  # an earlier state that misses trials would run them a second time
            damaged.append((state, f"does not know trial folder {unknown[0]}" + (f" and {len(unknown) - 1} more"
                                                                                 if len(unknown) > 1 else "")))  # fmt: skip
            continue
        if damaged:
            moved = [f for bad, _ in damaged for f in _session_files(sweep_dir, _session(bad))]
            aside = _set_aside(sweep_dir, moved)
            print(f"attnmel: warning: Tune's experiment state {damaged[0][0].name} is {damaged[0][1]}; resuming from "
                  f"the earlier {state.name} (the damaged files are in {aside}); trials that ended after it was saved "
                  "run again from the checkpoint it names", flush=True)  # fmt: skip
        return state
    newest, why = damaged[0] if damaged else (None, "missing")
    name = newest.name if newest is not None else folders.EXPERIMENT_STATE
    more = f", and no earlier state can stand in ({damaged[-1][1]})" if len(damaged) > 1 else ", and there is no earlier one"
    raise UserError(f"cannot resume {sweep_dir}: Tune's experiment state {name} is {why}{more}; nothing was run. {hint}")


def _point_of(trial_dir: Path, points: dict[str, dict[str, Any]]) -> str | None:
    """Which grid point a trial folder ran: its ``params.json``, else its name (which Tune
    builds from the trial id and the point's label)."""
    try:
        key = point_key(json.loads((trial_dir / folders.PARAMS).read_text()).get("point", {}))
        if key in points:
            return key
    except (OSError, ValueError, AttributeError):
        pass
    trial_id = folders.trial_id_of(trial_dir.name)
    for key, point in points.items():
        if trial_id and folders.trial_dirname(trial_id, folders.point_label(point)) == trial_dir.name:
            return key
    return None


def _finished(trial_dir: Path) -> bool:
    final = final_checkpoint(trial_dir)
    return final is not None and final_problem(final) is None


def finished_points(spec: SweepSpec, sweep_dir: Path) -> set[str]:
    """Keys (:func:`~orchestrator.sweep.trainable.point_key`) of the grid points a trial of the
    sweep finished, with a whole final checkpoint."""
    points = {point_key(p): p for p in spec.points}
    return {key for d in _trial_folders(sweep_dir) if (key := _point_of(d, points)) is not None and _finished(d)}


def damaged_finished(sweep_dir: Path, state: Path) -> list[str]:
    """One line per trial the saved state calls finished whose final checkpoint is damaged:
    Tune will not run it again, and the tables leave it out."""
    lines = []
    for trial in read_state(state):
        trial_dir = sweep_dir / (trial.dirname or "")
        final = final_checkpoint(trial_dir) if trial.dirname else None
        problem = final_problem(final) if final is not None else None
        if trial.status == TrialStatus.TERMINATED and problem is not None:
            lines.append(f"{trial.dirname}: finished, but {final.name}/{problem}; "
                         "`attnmel sweep resume --from-trials` runs it again")  # fmt: skip
    return lines


def _newest_intact(dirs: list[Path]) -> Path | None:
    """The newest checkpoint folder among ``dirs`` that holds a whole resumable state."""
    found = [c for d in dirs for c in d.glob(f"{folders.CHECKPOINT_PREFIX}*") if c.is_dir() and (c / "last.pt").exists()]
    found.sort(key=lambda c: (c.name, c.parent.name), reverse=True)
    return next((c for c in found if resume_problem(c) is None), None)


@dataclass
class Rebuild:
    """What ``--from-trials`` does: keeps ``kept`` (trial folder names), runs ``rerun`` again
    (grid points), each from ``resume_from[point_key]`` (a checkpoint folder) when it has one,
    and moves ``superseded`` aside."""

    kept: list[str] = field(default_factory=list)
    rerun: list[dict[str, Any]] = field(default_factory=list)
    resume_from: dict[str, Path] = field(default_factory=dict)
    superseded: list[Path] = field(default_factory=list)


def plan_rebuild(spec: SweepSpec, sweep_dir: Path, *, restart: bool = False) -> Rebuild:
    """The trial list of a grid sweep rebuilt from its folders (see the module docstring)."""
    if spec.search is not None:
        raise UserError("--from-trials rebuilds grid sweeps only: a search's trials are drawn by its searcher, whose "
                        "state is in the damaged experiment state")  # fmt: skip
    points = {point_key(p): p for p in spec.points}
    by_point: dict[str, list[Path]] = {key: [] for key in points}
    plan = Rebuild()
    for trial_dir in _trial_folders(sweep_dir):
        key = _point_of(trial_dir, points)
        if key is None:
            plan.superseded.append(trial_dir)  # a trial of no point (e.g. Tune's empty-config one)
        else:
            by_point[key].append(trial_dir)
    for key, point in points.items():
        dirs = by_point[key]
        finished = sorted((d for d in dirs if _finished(d)), key=lambda d: final_checkpoint(d).name)
        if finished:
            plan.kept.append(finished[-1].name)
            plan.superseded += [d for d in dirs if d != finished[-1]]
            continue
        plan.rerun.append(point)
        plan.superseded += dirs
        source = None if restart else _newest_intact(dirs)
        if source is not None:
            plan.resume_from[key] = source
    sessions = {_session(state) for state in sweep_dir.glob(folders.EXPERIMENT_STATE)}
    plan.superseded += [f for session in sorted(sessions) for f in _session_files(sweep_dir, session)]
    if (sweep_dir / _TUNER_FILE).exists():
        plan.superseded.append(sweep_dir / _TUNER_FILE)
    return plan


def apply_rebuild(plan: Rebuild, sweep_dir: Path) -> dict[str, str]:
    """Move the superseded files aside; returns ``resume_from`` as paths relative to the sweep
    folder, where the checkpoints are after the move (for ``sweep.json``)."""
    aside = _set_aside(sweep_dir, sorted(set(plan.superseded)))
    return {key: str((aside / source.parent.name / source.name).relative_to(sweep_dir))
            for key, source in plan.resume_from.items()}  # fmt: skip
