"""The one atomic file write: a reader sees the old file or the new one, never half of one.

Every file the project writes (checkpoints, JSON/JSONL, CSV, Parquet, figures, ``sweep.json``)
goes through :func:`atomic_output`: write a temporary file beside the target, ``fsync`` it,
rename it over the target, ``fsync`` the folder. Without the ``fsync`` a crash soon after the
rename can leave a zero-length file under the new name on journalling filesystems (the rename
is journalled before the data). A write that fails because the filesystem is full, over quota
or read-only raises :class:`~attnmel.errors.StorageError` naming the target and the space left.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from attnmel.errors import StorageError

__all__ = ["atomic_output", "atomic_write", "free_bytes", "storage_error"]

# What the filesystem answers when every later write to it would fail the same way.
_STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}
# torch.save to a path reports a short write as a RuntimeError without errno ("unexpected pos
# …"); a filesystem left with less than this after a failed write was full.
_NEARLY_FULL = 1 << 20


def free_bytes(path: str | Path) -> int | None:
    """Bytes this user may still write on the filesystem that holds ``path`` (or, when it does
    not exist yet, its nearest existing parent); None when nothing along it exists."""
    path = Path(path).absolute()
    for parent in (path, *path.parents):
        try:
            stat = os.statvfs(parent)
        except OSError:
            continue
        return stat.f_bavail * stat.f_frsize
    return None


def _is_read_only(path: Path) -> bool:
    for parent in (path, *path.parents):
        try:
            return bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False


def storage_error(exc: BaseException, path: str | Path) -> StorageError | None:
    """``exc`` as a :class:`StorageError` about ``path`` when a full, over-quota or read-only
    filesystem caused it (anywhere in its chain of causes), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, StorageError):
            return current
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            return StorageError(path, _STORAGE_ERRNOS[current.errno], free_bytes(path))
        seen.add(id(current))
        # Ray hands a worker's exception to the driver with the original as `cause`
        current = current.__cause__ or current.__context__ or getattr(current, "cause", None)
    return None


def _wall_reason(folder: Path) -> str | None:
    """Why writes into ``folder`` fail, read off the filesystem itself (for errors without errno)."""
    if _is_read_only(folder):
        return _STORAGE_ERRNOS[errno.EROFS]
    free = free_bytes(folder)
    if free is not None and free < _NEARLY_FULL:
        return _STORAGE_ERRNOS[errno.ENOSPC]
    return None


def _fsync(path: Path, *, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # a filesystem turned read-only keeps it; it is a dot-file
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, make it
    durable and rename it to ``path`` (atomic on one filesystem). The temporary file never
    outlives the block; a write that fails for want of space (or on a read-only filesystem) is a
    :class:`StorageError` about ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # some network filesystems cannot sync a folder
            _fsync(path.parent, folder=True)
    except BaseException as exc:
        problem = storage_error(exc, path)
        wall = None
        if problem is None and isinstance(exc, Exception) and not isinstance(exc, OSError):
            wall = _wall_reason(path.parent)  # read while the temporary file still holds its space
        _discard(tmp)
        if problem is not None and not isinstance(exc, StorageError):
            problem = StorageError(path, problem.reason, free_bytes(path))  # the space left without it
        elif wall is not None:
            problem = StorageError(path, wall, free_bytes(path))
        if problem is not None and problem is not exc:
            raise problem from exc
        raise
    finally:
        _discard(tmp)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
