"""A real headless Chromium for the page tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser builds are never downloaded; the system browser is launched with a
fresh profile and the flags that keep it from reaching out by itself. Every request a page
makes is routed through :class:`Offline`: the page's own ``file://`` URL goes through, anything
else is recorded and aborted, so a test can assert that nothing was attempted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip
A4_CONTENT_PX = 703  # A4's 210 mm less the print stylesheet's 2 × 12 mm margins, at 96 px per inch


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return "no chromium on this machine (Debian: apt-get install -y chromium; .ci/run installs it)"
    return None


class Offline:
    """One page opened from a file, with every request, console error and script error it caused."""

    def __init__(self, context: Any, path: Path, *, width: int = 1280, height: int = 900) -> None:
        self.url = Path(path).resolve().as_uri()
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.page = context.new_page()
        self.page.set_viewport_size({"width": width, "height": height})
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.page_errors.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.goto(self.url)

    def _route(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.page.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A browser context of the system Chromium with a fresh profile, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="attnmel-chromium-") as profile, sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS, service_workers="block",
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()
