"""The JSON report (rewritten after every measurement, so a run cut short keeps what it measured)
and the small formatting helpers every part prints with."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from attnmel.atomic import atomic_write

REPORT_NAME = "gpu_check.json"
SCHEMA = 2


def say(*parts: Any) -> None:
    """Print and flush at once: a run killed at its time limit keeps everything printed."""
    print(*parts, flush=True)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def ratio(a: Any, b: Any) -> float | None:
    return a / b if finite(a) and finite(b) and b else None


def fmt(x: Any, spec: str = ".1f", none: str = "-") -> str:
    return format(x, spec) if finite(x) else none


def status_of(rows: list[dict[str, Any]]) -> str:
    """ok when every row is; partial when some failed; error when all did; skipped when none ran."""
    states = {r.get("status") for r in rows}
    if "error" in states:
        return "partial" if "ok" in states else "error"
    return "ok" if "ok" in states else "skipped"


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


class Report:
    """One JSON object at ``out/gpu_check.json``; ``save()`` writes it atomically."""

    def __init__(self, out: Path, data: dict[str, Any]) -> None:
        self.path = out / REPORT_NAME
        self.data = {"schema": SCHEMA, **data, "json_path": str(self.path)}

    @property
    def parts(self) -> dict[str, Any]:
        return self.data["parts"]

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.data, indent=2, default=str) + "\n")
