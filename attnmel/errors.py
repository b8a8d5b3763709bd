"""Errors the user can fix; the command line prints them as one line and exits with code 2."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A problem the user can fix (bad input, missing file, bad option).

    ``str(error)`` is one line that names the offending key, file or value.
    """
