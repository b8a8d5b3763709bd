"""How a sweep's storage folder is laid out, stated once for those who write it (Tune, the
driver) and those who read it (the result tables, ``predict``).

``<storage>/<sweep>/`` is Tune's experiment folder: ``sweep.json`` (name, spec, code version,
creation time), Tune's ``experiment_state-*.json``, and one folder per trial named
``<trial id>_<label>`` holding ``params.json`` (:func:`orchestrator.layout.params.tune_params`),
``result.json`` (one line per epoch), ``error.txt`` after a failure and ``checkpoint_NNNNNN/``
folders (a snapshot of the run directory each; Tune keeps each trial's newest
``KEEP_CHECKPOINTS``); ``report.html``, the sweep's page, refreshed after each finished trial
and at the end. ``slurm/`` holds what ``attnmel sweep slurm`` writes before the sweep starts
(:mod:`orchestrator.sweep.slurm`): the job script, the resolved spec it runs and the job's logs.
``sweep resume --from-trials`` moves what it replaces into a ``.superseded-<time>/`` folder,
which no reader looks into.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from attnmel.errors import UserError

__all__ = [
    "SWEEP_META", "PARAMS", "RESULTS", "ERRORS", "EXPERIMENT_STATE", "CHECKPOINT_PREFIX", "KEEP_CHECKPOINTS",
    "SUPERSEDED_PREFIX", "PAGE", "SLURM_DIR", "SLURM_SCRIPT", "SLURM_SPEC", "SLURM_LOG",
    "PLACEMENT", "point_label", "trial_dirname", "trial_dirs", "trial_id_of", "find_trial",
]  # fmt: skip

SWEEP_META, PARAMS, RESULTS, ERRORS = "sweep.json", "params.json", "result.json", "error.txt"
# Where a trial ran, in every result.json line (from the trainable; Tune's own hostname and
# node_ip agree) and the trials table: its node, the GPU ids Ray gave it (comma-separated, ""
# for none) and the CUDA_VISIBLE_DEVICES it saw (the same ids, checked), its GPU and CPU shares,
# and when its latest attempt started (Unix seconds).
PLACEMENT: dict[str, type] = {
    "hostname": str, "node_ip": str, "node_id": str, "gpu_ids": str, "cuda_visible_devices": str,
    "gpus": float, "cpus": float, "started_at": float,
}
EXPERIMENT_STATE = "experiment_state-*.json"  # Tune's saved experiment, one file per save
CHECKPOINT_PREFIX = "checkpoint_"
PAGE = "report.html"  # the sweep's self-contained page (orchestrator.results.html)
SLURM_DIR = "slurm"  # the Slurm launcher's files, there before the sweep's own:
SLURM_SCRIPT, SLURM_SPEC = "job.sbatch", "spec.yaml"  # the job script and the resolved spec it runs
SLURM_LOG = "slurm-%j.out"  # the job's log; %j: its id (a requeued job keeps its id and appends)
# Checkpoints Tune keeps per trial (newest first, no score): with one fewer, a driver killed
# between Tune deleting the older one and saving its state could leave a state naming none.
KEEP_CHECKPOINTS = 2
SUPERSEDED_PREFIX = ".superseded-"
_MAX_NAME = 120  # characters of a trial folder's name

# Grid and random search trial ids are "<5 hex>_<5 digits>", other searchers' 8 hex digits; a
# trial folder's name starts with its id (older versions of Tune put "<trainable>_" before it).
_TRIAL_ID = (re.compile(r"(?:^|_)([0-9a-f]{5}_\d{5})(?=_|$)"), re.compile(r"(?:^|_)([0-9a-f]{8})(?=_|$)"))


def point_label(point: dict[str, Any]) -> str:
    """A grid point as people read it: ``attnmel+lesion seed 0 lambda1=0.001``."""
    parts = [point.get("variant", "?"), f"seed {point.get('runtime.seed', 0)}"]
    for key, value in point.items():
        if key not in ("variant", "runtime.seed"):
            parts.append(f"{key.split('.')[-1]}={value:g}" if isinstance(value, float) else f"{key.split('.')[-1]}={value}")
    return " ".join(parts)


def trial_dirname(trial_id: str, label: str) -> str:
    """A trial's folder name: its id, then a readable label of its point."""
    label = label.replace(" ", "_").replace("+", "-").replace("=", "")
    return f"{trial_id}_{label}"[:_MAX_NAME]


def trial_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's trial folders: its sub-folders that hold a ``params.json``, sorted."""
    return sorted(p.parent for p in Path(sweep_dir).glob(f"*/{PARAMS}"))


def trial_id_of(dirname: str) -> str | None:
    """The trial id in a trial folder's name, or None."""
    for pattern in _TRIAL_ID:
        match = pattern.search(dirname)
        if match:
            return match.group(1)
    return None


def find_trial(results: Path, trial_id: str) -> Path:
    """The folder of trial ``trial_id`` in any sweep under the results root ``results``; a
    ``UserError`` when there is none or several."""
    if not results.is_dir():
        raise UserError(f"{trial_id!r} is neither a path nor a trial id found under results root {results} "
                        "(does not exist; use --results)")  # fmt: skip
    found = [p for sweep in sorted(results.iterdir()) if sweep.is_dir() for p in trial_dirs(sweep)
             if trial_id_of(p.name) == trial_id]  # fmt: skip
    if not found:
        raise UserError(f"no run directory, checkpoint or trial {trial_id!r} (searched trial folders under {results})")
    if len(found) > 1:
        listed = ", ".join(str(t) for t in found[:4]) + (" …" if len(found) > 4 else "")
        raise UserError(f"trial id {trial_id!r} matches {len(found)} trials under {results}: {listed}; give its directory")
    return found[0]
