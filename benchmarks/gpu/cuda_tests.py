"""Part "cuda_tests": ``pytest -m cuda`` on the test files that carry the marker (only those are
collected, so test modules that need what the GPU machine lacks do not break collection)."""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any

from benchmarks.gpu.report import say
from benchmarks.timed_command import REPO, run_command


def cuda_test_files() -> list[str]:
    """The test files with a ``@pytest.mark.cuda`` test, relative to the checkout."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                  if "mark.cuda" in p.read_text(encoding="utf-8", errors="replace"))  # fmt: skip


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    if importlib.util.find_spec("pytest") is None:
        return {"status": "skipped", "reason": "pytest is not installed (carry a wheel, see docs/gpu_check.md)"}
    files = cuda_test_files()
    if not files:
        return {"status": "error", "error": "no test file carries @pytest.mark.cuda"}
    argv = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *files]
    say(f"\n== cuda_tests: {' '.join(argv[1:])}")
    done = run_command(argv, ctx["work"] / "cuda_tests.log", timeout=ctx["clock"].left())
    summary = [line for _, line in done.lines if re.search(r"\d+ (passed|failed|skipped|errors?|deselected)", line)]
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error", "deselected")}
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary[-1] if summary else ""):
        counts["error" if what.startswith("error") else what] += int(n)
    ok = done.rc == 0 and not counts["failed"] and not counts["error"]
    say("   " + (summary[-1].strip() if summary else f"pytest exit {done.rc}"))
    return {"status": "ok" if ok else "error", "returncode": done.rc, "files": files, **counts,
            "output_tail": done.tail(20)}  # fmt: skip
