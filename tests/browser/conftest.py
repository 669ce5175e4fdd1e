"""Fixtures for tests that look at metalab's pages in a real headless Chromium.

The browser is Debian's ``chromium`` (``scripts/chromium.sh`` installs it with apt when
``/usr/bin/chromium`` is missing), driven by Playwright's sync API; Playwright never
downloads a browser of its own. Fixtures, for any test under ``tests/browser``:

- ``chromium_path`` (session): the browser's path. When Chromium is missing and cannot
  be installed, the tests that use it fail in CI and are skipped elsewhere, with the
  script's message (``services.unavailable``).
- ``browser`` (session): one launched ``playwright.sync_api.Browser``, headless, with
  background networking, component updates, sync and QUIC off, so the browser itself
  makes no request while a test runs.
- ``page_log`` (function): a :class:`PageLog` of what the page did that a person would
  count as wrong: console errors, uncaught page errors, dialogs (``alert``, ``confirm``,
  ``prompt``; each is dismissed, so a test never hangs on one), and every request URL.
  ``page_log.assert_clean()`` fails the test with all of them listed.
- ``page`` (function): a fresh ``Page`` in its own browser context (no cookies or
  storage shared between tests), 1280x900, recording into ``page_log``; 10 s default
  timeout, so a page that never gets ready fails fast.
- ``screenshot`` (function): ``screenshot(page, "name")`` saves a full-page PNG as
  ``tmp_path / "name.png"``, prints its path (shown with ``pytest -s`` or ``-rA``) and
  returns it.

Example::

    def test_page_opens(page, page_log, screenshot, tmp_path):
        page.goto((tmp_path / "report.html").as_uri())
        page.wait_for_function("window.metalabReady === true")
        screenshot(page, "report")
        page_log.assert_clean()
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services import unavailable

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chromium.sh"
# Flags that keep Chromium from reaching the network on its own, and let it run as
# root in a container (no sandbox) without a GPU.
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class PageLog:
    """What a page did wrong (console errors, page errors, dialogs) and what it requested."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every console error, page error and dialog, each as one line."""
        return (
            [f"console error: {text}" for text in self.console_errors]
            + [f"page error: {text}" for text in self.page_errors]
            + [f"dialog: {text}" for text in self.dialogs]
        )

    def assert_clean(self) -> None:
        """Fail if the page logged a console error, raised, or opened a dialog."""
        problems = self.problems()
        assert not problems, "the page went wrong:\n" + "\n".join(problems)

    def watch(self, page: Any) -> None:
        """Record ``page``'s console errors, page errors, dialogs and requests."""
        page.on(
            "console",
            lambda message: (
                self.console_errors.append(f"{message.text} ({message.location})")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("dialog", self._dismiss)
        page.on("request", lambda request: self.requests.append(request.url))

    def _dismiss(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The path of Debian's Chromium, installed by scripts/chromium.sh when missing."""
    done = subprocess.run(
        ["bash", str(_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        unavailable(
            f"Chromium is missing and could not be installed here (scripts/chromium.sh: "
            f"{done.stderr.strip()[-500:]})"
        )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the session, driven by Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page_log() -> PageLog:
    """The console errors, page errors, dialogs and requests of this test's ``page``."""
    return PageLog()


@pytest.fixture
def page(browser: Any, page_log: PageLog) -> Iterator[Any]:
    """A fresh page in a context of its own, recording into ``page_log``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    try:
        opened = context.new_page()
        page_log.watch(opened)
        yield opened
    finally:
        context.close()


#: The documentation's pictures of the report and the dashboard are these screenshots:
#: ``METALAB_DOCS_SCREENSHOTS=1 pytest tests/browser`` also writes the ones the docs
#: show into docs/img/ (never by hand).
DOCS_SCREENSHOTS = {"report", "list", "run", "compare", "experiment"}
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Any, str], Path]:
    """``screenshot(page, name)``: save a full-page PNG under tmp_path, print its path."""

    def take(page: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        if os.environ.get("METALAB_DOCS_SCREENSHOTS") == "1" and name in DOCS_SCREENSHOTS:
            DOCS_IMG.mkdir(exist_ok=True)
            page.screenshot(path=str(DOCS_IMG / f"{name}.png"))  # the first screenful
        return path

    return take
