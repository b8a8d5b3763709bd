"""Sweep storage on a local path, a shared filesystem or an object store URI (``s3://…``).

One set of file helpers over ``pyarrow.fs`` so the driver treats every kind of storage the
same way; local paths use the project's one atomic write. And what a sweep's trials will hold
in storage (:func:`storage_need`), so that a sweep too big for its storage is refused before
its first trial rather than found out by every trial at its first checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnmel.atomic import atomic_write, free_bytes
from attnmel.errors import UserError
from orchestrator.layout.folders import KEEP_CHECKPOINTS

if TYPE_CHECKING:
    from attnmel.config import TrainConfig

__all__ = [
    "is_uri", "exists", "write_json", "read_json", "list_dir", "make_dir", "remove_dir", "remove", "check_writable",
    "writable_problem", "free_space", "trial_need", "storage_need",
]  # fmt: skip

TUNE_FILES = 1 << 20  # per trial: Tune's result.json, progress.csv, params, event files (generous)


def is_uri(path: str) -> bool:
    """``s3://…``, ``gs://…`` and friends are handed to Ray untouched."""
    return "://" in path


def _fs(path: str) -> tuple[Any, str]:
    import pyarrow.fs

    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), path


def exists(path: str) -> bool:
    """Whether a file or folder is at ``path``."""
    import pyarrow.fs

    fs, inner = _fs(path)
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write JSON atomically (a plain PUT on object stores, which are atomic per object)."""
    text = json.dumps(data, indent=2, sort_keys=True)
    if not is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        return
    fs, inner = _fs(path)
    with fs.open_output_stream(inner) as out:
        out.write(text.encode())


def read_json(path: str) -> dict[str, Any]:
    """A JSON file as a dict."""
    fs, inner = _fs(path)
    with fs.open_input_stream(inner) as handle:
        return json.loads(handle.read().decode())


def list_dir(path: str) -> list[str]:
    """Base names of the entries directly inside ``path`` (empty when it does not exist)."""
    import pyarrow.fs

    fs, inner = _fs(path)
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(inner, allow_not_found=True))
    except (OSError, ValueError):
        return []
    return sorted(info.base_name for info in infos)


def make_dir(path: str) -> None:
    """Create a folder (and its parents); nothing when it exists."""
    fs, inner = _fs(path)
    fs.create_dir(inner, recursive=True)


def remove_dir(path: str) -> None:
    """Delete a folder and everything in it (nothing when it is gone already)."""
    fs, inner = _fs(path)
    try:
        fs.delete_dir(inner)
    except FileNotFoundError:
        pass


def remove(path: str) -> None:
    """Delete a file or a folder at ``path`` (nothing when it is gone already)."""
    import pyarrow.fs

    fs, inner = _fs(path)
    kind = fs.get_file_info(inner).type
    if kind == pyarrow.fs.FileType.Directory:
        fs.delete_dir(inner)
    elif kind == pyarrow.fs.FileType.File:
        fs.delete_file(inner)


def check_writable(storage: str) -> None:
    """Refuse a local storage path that cannot hold a sweep, before anything starts."""
    if is_uri(storage):
        return
    path = Path(storage)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"storage {storage}: {parent} is a file, not a folder (spec key 'storage' / --storage)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"storage {storage}: {parent} is not writable (spec key 'storage' / --storage)")
            return


def writable_problem(storage: str) -> str | None:
    """Why a local storage folder cannot be written now ("read-only file system", "not
    writable"), or None (also for object stores, which say so only when written)."""
    if is_uri(storage):
        return None
    path = Path(storage).absolute()
    for parent in (path, *path.parents):
        if parent.exists():
            if os.statvfs(parent).f_flag & os.ST_RDONLY:
                return "read-only file system"
            return None if os.access(parent, os.W_OK | os.X_OK) else "permission denied"
    return None


def free_space(storage: str) -> int | None:
    """Bytes free where a local storage path is (or would be) created; None for object stores."""
    return None if is_uri(storage) else free_bytes(storage)


def _sizes(config: "TrainConfig") -> Any:
    from attnmel.checkpoint_sizes import checkpoint_sizes

    return checkpoint_sizes(config)


def trial_need(config: "TrainConfig") -> tuple[int, int]:
    """``(finished, running)``: the bytes one trial of ``config`` holds in storage once it has
    finished (its final checkpoint and, until the sweep ends and prunes, the resumable ones Tune
    keeps beside it) and at most while it runs (the resumable ones Tune keeps and the next one
    being copied, or the final one being copied beside those)."""
    sizes = _sizes(config)
    reported, keep = sizes.reported, KEEP_CHECKPOINTS
    finished = sizes.final + min(reported, keep - 1) * sizes.snapshot + TUNE_FILES
    running = max(min(reported, keep + 1) * sizes.snapshot, min(reported, keep) * sizes.snapshot + sizes.final)
    return finished, max(finished, running + TUNE_FILES)


def storage_need(configs: Sequence["TrainConfig"], concurrent: int) -> int:
    """The most the trials of ``configs`` hold in storage at once when ``concurrent`` run at a
    time: every trial finished, plus what the largest ``concurrent`` hold beyond that while
    they run. Checkpoint sizes come from the models' shapes (one estimate per model)."""
    cache: dict[Any, tuple[int, int]] = {}
    needs = []
    for config in configs:
        key = (config.model, config.optim.momentum, config.optim.epochs)
        if key not in cache:
            cache[key] = trial_need(config)
        needs.append(cache[key])
    extra = sorted((running - finished for finished, running in needs), reverse=True)
    return sum(finished for finished, _ in needs) + sum(extra[: max(concurrent, 0)])
