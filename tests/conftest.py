"""Fixtures shared by the whole suite: a real small filesystem for the storage-fault tests, and
(tests/_data_fixtures.py) the synthetic datasets and the loopback archive server."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

pytest_plugins = ["tests._data_fixtures"]


class SmallFilesystem:
    """A ``tmpfs`` mount of a few MB at ``path``: writes past its size fail with ENOSPC, as on
    a full disk; it can grow and turn read-only (and back) while something writes to it."""

    def __init__(self, path: Path, size_mb: float) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        mounted = self._run("mount", "-t", "tmpfs", "-o", f"size={self._kib(size_mb)}k", "tmpfs", str(path))
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")

    @staticmethod
    def _kib(size_mb: float) -> int:
        return max(int(size_mb * 1e6 / 1024), 64)

    @staticmethod
    def _run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True)

    def _remount(self, options: str) -> None:
        done = self._run("mount", "-o", f"remount,{options}", str(self.path))
        assert done.returncode == 0, done.stderr

    def grow(self, size_mb: float) -> None:
        """Set the size to ``size_mb`` (what freeing space on a full disk amounts to)."""
        self._remount(f"size={self._kib(size_mb)}k")

    def read_only(self, timeout: float = 60) -> None:
        """Remount read-only; while a file on it is open for writing the kernel refuses (busy),
        so this tries again between writes, as an admin's remount would land."""
        deadline = time.monotonic() + timeout
        while (done := self._run("mount", "-o", "remount,ro", str(self.path))).returncode != 0:
            assert "busy" in done.stderr and time.monotonic() < deadline, done.stderr
            time.sleep(0.002)

    def writable(self) -> None:
        self._remount("rw")

    def unmount(self) -> None:
        if self._run("umount", str(self.path)).returncode != 0:
            self._run("umount", "-l", str(self.path))  # still open somewhere: detach now, free when closed


@pytest.fixture
def small_fs(tmp_path):
    """``small_fs(size_mb, name="fs") -> SmallFilesystem`` inside this test's tmp folder; every
    mount is undone at teardown, whatever the test did."""
    mounts: list[SmallFilesystem] = []

    def mount(size_mb: float, name: str = "fs") -> SmallFilesystem:
        mounts.append(SmallFilesystem(tmp_path / name, size_mb))
        return mounts[-1]

    try:
        yield mount
    finally:
        for fs in reversed(mounts):
            fs.unmount()
