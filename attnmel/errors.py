"""Errors the user can fix; the command line prints them as one line and exits with code 2."""

from __future__ import annotations

__all__ = ["UserError", "StorageError", "format_bytes"]


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, bad option).

    ``str(error)`` is one line that names the offending key, file or value.
    """


def format_bytes(n: int | None) -> str:
    """``n`` bytes in MB (decimal, one digit), or "unknown"."""
    return "unknown" if n is None else f"{n / 1e6:,.1f} MB"


class StorageError(UserError):
    """A write failed because its filesystem is full, over quota or read-only.

    ``path`` is the file being written, ``reason`` what the filesystem said ("no space left on
    device", "disk quota exceeded", "read-only file system") and ``free`` the bytes it had left
    afterwards (None when unknown); ``detail`` ends the line. Every later write to the same place would fail the same way,
    so callers stop rather than retry.
    """

    def __init__(self, path: object, reason: str, free: int | None, detail: str = "") -> None:
        self.path, self.reason, self.free, self.detail = str(path), reason, free, detail
        super().__init__(f"{reason} writing {path} (free: {format_bytes(free)}){detail}")

    def __reduce__(self):  # Ray pickles a trial's exception to the driver: keep the fields
        return type(self), (self.path, self.reason, self.free, self.detail)
