"""The admin API in a real browser: the schema loads, the Content-Security-Policy stops an
inline script, and a request of a page without a token is refused."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page

from rwq.web.server import WebServer
from web_fixtures import BrowserError, Shot

INSERT_INLINE_SCRIPT = """
() => new Promise((resolve) => {
  document.addEventListener("securitypolicyviolation", (event) => resolve({
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    ran: window.inlineScriptRan === true,
  }), {once: true});
  const script = document.createElement("script");
  script.textContent = "window.inlineScriptRan = true";
  document.body.append(script);
})
"""
FETCH_QUEUES = """
async () => {
  const response = await fetch("/api/v1/queues");
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: await response.json(),
  };
}
"""


def test_the_browser_loads_the_schema(web: WebServer, browser_page: Page, shot: Shot) -> None:
    response = browser_page.goto(f"{web.url}/openapi.json")
    assert response is not None and response.status == 200
    schema = json.loads(browser_page.locator("pre").inner_text())
    assert schema["info"]["title"] == "rwq admin API"
    assert shot(browser_page, "schema").is_file()


@pytest.mark.expected_browser_errors(
    r"^csp: script-src-elem blocked inline$",
    r"^console: .*inline script.*Content Security Policy directive 'script-src 'self''",
)
def test_the_content_security_policy_blocks_an_inline_script(
    web: WebServer, browser_page: Page, browser_errors: list[BrowserError]
) -> None:
    browser_page.goto(f"{web.url}/openapi.json")
    with browser_page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        violation = browser_page.evaluate(INSERT_INLINE_SCRIPT)
    assert violation == {"directive": "script-src-elem", "blocked": "inline", "ran": False}
    assert browser_page.evaluate("() => window.inlineScriptRan") is None
    assert BrowserError("csp", "script-src-elem blocked inline") in browser_errors


@pytest.mark.expected_browser_errors(r"^console: .* 401 \(Unauthorized\) at .*/api/v1/queues$")
def test_a_page_without_a_token_is_refused(web: WebServer, browser_page: Page) -> None:
    browser_page.goto(f"{web.url}/openapi.json")
    answer = browser_page.evaluate(FETCH_QUEUES)
    assert answer["status"] == 401
    assert answer["type"] == "application/json"
    assert answer["body"]["error"]["code"] == "unauthorized"
