"""Which code produced a result: package version plus the git commit (torch-free, cheap)."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

__all__ = ["code_version"]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one.

    ``ATTNMEL_CODE_VERSION`` wins: a job shipped to a cluster as a copy without ``.git``
    carries the submitter's version in it.
    """
    from attnmel import __version__

    if os.environ.get("ATTNMEL_CODE_VERSION"):
        return os.environ["ATTNMEL_CODE_VERSION"]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__
