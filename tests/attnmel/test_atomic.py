"""attnmel.atomic on a real small filesystem: full, read-only, durable; the old file survives."""

from __future__ import annotations

import os

import pytest
import torch

from attnmel import atomic
from attnmel.atomic import atomic_output, atomic_write, free_bytes, storage_error
from attnmel.errors import StorageError


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_write_past_a_full_disk_is_one_line_and_keeps_the_old_file(small_fs):
    fs = small_fs(1)
    target = fs.path / "epochs.jsonl"
    atomic_write(target, "old\n")
    with pytest.raises(StorageError) as caught:
        atomic_write(target, b"x" * 2_000_000)
    error = caught.value
    assert error.path == str(target) and error.reason == "no space left on device"
    # the space it reports is what is left once the temporary file gave its space back
    assert error.free == free_bytes(fs.path) and error.free > 900_000
    assert str(error) == f"no space left on device writing {target} (free: {error.free / 1e6:,.1f} MB)"
    assert "\n" not in str(error)
    assert target.read_text() == "old\n" and _leftovers(fs.path) == []


def test_torch_save_on_a_full_disk_is_a_storage_error_too(small_fs):
    """torch.save to a path reports a short write without errno; the filesystem tells."""
    fs = small_fs(1)
    target = fs.path / "last.pt"
    with pytest.raises(StorageError, match="no space left on device writing .*last.pt"):
        with atomic_output(target) as tmp:
            torch.save({"w": torch.zeros(400_000)}, tmp)  # 1.6 MB
    assert not target.exists() and _leftovers(fs.path) == []


def test_a_read_only_filesystem_is_named_and_nothing_changes(small_fs):
    fs = small_fs(1)
    target = fs.path / "final.json"
    atomic_write(target, "{}")
    fs.read_only()
    with pytest.raises(StorageError) as caught:
        atomic_write(target, '{"best_epoch": 3}')
    assert caught.value.reason == "read-only file system"
    assert target.read_text() == "{}" and _leftovers(fs.path) == []


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with atomic_output(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            1 / 0
    assert list(tmp_path.iterdir()) == []
    assert storage_error(ValueError("no"), tmp_path) is None
    assert storage_error(OSError(5, "I/O error"), tmp_path) is None  # EIO is not a full disk
    wrapped = RuntimeError("copy failed")
    wrapped.__cause__ = OSError(122, "Disk quota exceeded")
    assert storage_error(wrapped, tmp_path / "x").reason == "disk quota exceeded"


def test_the_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic_write(tmp_path / "sweep.json", "{}")
    assert events == [("fsync", f".sweep.json.tmp-{os.getpid()}"), ("rename", "sweep.json"), ("fsync", tmp_path.name)]
