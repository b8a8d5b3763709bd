"""Which code produced a result: package version plus the git commit, and the environment that
shapes its numbers (torch-free, cheap)."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["code_version", "environment"]


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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """What besides the code and config shapes a run's numbers, as plain types: Python, the
    installed version of every runtime dependency the project declares (torch, numpy, Pillow,
    scikit-learn, …: the list is pyproject's, read from the installed package's metadata), the
    CPU model and core count and, where torch is already imported here, its CUDA/cuDNN versions
    and the GPU models. A process's own view: a cluster's worker nodes may differ."""
    packages: dict[str, str | None] = {}
    try:
        requirements = metadata.requires("attnmel") or []
    except metadata.PackageNotFoundError:
        requirements = []
    for requirement in requirements:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "packages": packages}  # fmt: skip
    torch = sys.modules.get("torch")  # never imported for this: recording must stay cheap
    if torch is not None:
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        info["gpus"] = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                        if torch.cuda.is_available() else [])  # fmt: skip
    return info
