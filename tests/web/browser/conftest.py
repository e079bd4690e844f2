"""Browser fixtures: Debian's Chromium (`make toolchains` installs it) driven by Playwright,
never a browser Playwright downloads, and pages whose test fails on any console error,
uncaught exception or Content-Security-Policy violation, with a screenshot of each page.

``RWQ_CHROMIUM`` names another Chromium; ``RWQ_SCREENSHOTS`` another screenshots directory
than ``build/screenshots``. Both are read here, before the tests' fixtures clear ``RWQ_*``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from web_fixtures import BrowserError, Shot

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = os.environ.get("RWQ_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("RWQ_SCREENSHOTS") or REPO / "build" / "screenshots")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium calls Google's services at start without these, and a machine without a
    # network refuses them. Playwright passes them too today; stated here so it stays so.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
EXPECTED_ERRORS = "expected_browser_errors"
"""The marker: ``@pytest.mark.expected_browser_errors(r"regex", ...)`` lets the errors of a
page that match one of the patterns pass (the test can still assert on them)."""

# Chromium asks every origin it shows for /favicon.ico unless the page links an icon; a JSON
# answer of the API links none, and the API has none to give.
FAVICON_NOT_FOUND = re.compile(r"status of 404 \(Not Found\) at https?://[^/]+/favicon\.ico$")

# Every page reports its Content-Security-Policy violations to the test as well as to the
# console; Playwright injects this listener and its binding, so the policy does not stop them.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.rwqCspViolation(`${event.effectiveDirective} blocked ${event.blockedURI}`);
});
"""


class SystemChromium:
    """The Chromium of the tests under Playwright, launched on first use and stopped when the
    next test needs no browser (see :func:`pytest_runtest_teardown`)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def browser(self) -> Browser:
        if self._browser is None:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable, headless=True, args=list(CHROMIUM_ARGS)
            )
        return self._browser

    def stop(self) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()
        self._browser = self._playwright = None


SYSTEM_CHROMIUM = pytest.StashKey[SystemChromium]()


@pytest.fixture(scope="session")
def system_chromium(pytestconfig: pytest.Config) -> Iterator[SystemChromium]:
    executable = shutil.which(CHROMIUM)
    if executable is None:
        pytest.fail(
            f"no Chromium at {CHROMIUM!r}: `make toolchains` installs Debian's chromium "
            "(or set RWQ_CHROMIUM to another one)",
            pytrace=False,
        )
    chromium = pytestconfig.stash[SYSTEM_CHROMIUM] = SystemChromium(executable)
    yield chromium
    chromium.stop()


@pytest.fixture
def chromium(system_chromium: SystemChromium) -> Browser:
    """The headless system Chromium, one for the tests that run in a row."""
    return system_chromium.browser()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # Between its calls Playwright's sync API marks its event loop as running in this thread,
    # so asyncio.run() fails in any later test while the browser lives. Stopped after the
    # test's fixtures are torn down, also when that failed; for this directory's tests only.
    try:
        return (yield)
    finally:
        chromium = item.config.stash.get(SYSTEM_CHROMIUM, None)
        if chromium is not None and "chromium" not in getattr(nextitem, "fixturenames", ()):
            chromium.stop()


@pytest.fixture
def browser_errors() -> list[BrowserError]:
    """What ``browser_page`` reported: its test fails on any not expected (see
    :data:`EXPECTED_ERRORS`)."""
    return []


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """``shot(page, "name")``: a screenshot mid-test, ``<test name>.name.png``."""

    def take(page: Page, name: str) -> Path:
        return _screenshot(page, f"{request.node.name}.{name}")

    return take


@pytest.fixture
def browser_page(
    chromium: Browser, browser_errors: list[BrowserError], request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A page of its own context (1280x900); at the end a screenshot, ``<test name>.png``,
    and the test fails on any error the page reported that was not expected."""
    context = chromium.new_context(viewport=VIEWPORT)
    context.expose_binding(
        "rwqCspViolation", lambda _source, text: browser_errors.append(BrowserError("csp", text))
    )
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        url = message.location.get("url")
        text = f"{message.text} at {url}" if url else message.text
        if message.type == "error" and not FAVICON_NOT_FOUND.search(text):
            browser_errors.append(BrowserError("console", text))

    page.on("console", on_console)
    page.on("pageerror", lambda error: browser_errors.append(BrowserError("pageerror", str(error))))
    yield page
    try:
        if not page.is_closed():
            _screenshot(page, request.node.name)
    finally:
        context.close()
    patterns = [p for m in request.node.iter_markers(EXPECTED_ERRORS) for p in m.args]
    unexpected = [e for e in browser_errors if not any(re.search(p, str(e)) for p in patterns)]
    if unexpected:
        pytest.fail("the page reported:\n" + "\n".join(f"  {e}" for e in unexpected), pytrace=False)


def _screenshot(page: Page, name: str) -> Path:
    path = SCREENSHOTS / (re.sub(r"[^\w.\[\]-]+", "_", name) + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path)
    return path
