"""The web UI's pages and files as served: every page a shell with its script as a file, the
security headers on each, and nothing in them that the Content-Security-Policy would have to
allow (inline script or style)."""

from __future__ import annotations

import re

import httpx
import pytest

from rwq.printable import _INVISIBLE
from rwq.web.pages import PAGES, STATIC
from rwq.web.security import CONTENT_SECURITY_POLICY
from rwq.web.server import WebServer

SHELLS = [*PAGES, "login", "queues/tenant.a", "jobs/abc-123"]


@pytest.mark.parametrize("path", SHELLS)
def test_every_page_is_a_shell_whose_script_is_a_file(web: WebServer, path: str) -> None:
    page = httpx.get(f"{web.url}/{path}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    scripts = re.findall(r"<script\b[^>]*>", page.text)
    assert scripts and all(' src="/static/js/' in tag for tag in scripts), scripts
    assert " style=" not in page.text and "<style" not in page.text
    for src in re.findall(r'src="(/static/[^"]+)"', page.text):
        served = httpx.get(f"{web.url}{src}")
        assert served.status_code == 200, src
        assert served.headers["content-type"].startswith("text/javascript")
    for href in re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text):
        assert httpx.get(f"{web.url}{href}").headers["content-type"].startswith("text/css")


def test_the_root_goes_to_the_queues_and_unknown_paths_are_json(web: WebServer) -> None:
    root = httpx.get(f"{web.url}/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (302, "/queues")
    missing = httpx.get(f"{web.url}/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    escape = httpx.get(f"{web.url}/static/..%2f..%2fweb%2fapp.py")
    assert escape.status_code == 404


def test_every_script_imports_only_files_of_the_app_and_builds_text_as_text() -> None:
    scripts = sorted((STATIC / "js").glob("*.js"))
    pages = {p.replace("-", "_") for p in [*PAGES, "login", "queue", "job"]}
    assert {s.stem for s in scripts} == pages | {"common", "printable"}
    for script in scripts:
        source = script.read_text(encoding="utf-8")
        for module in re.findall(r'from "([^"]+)"', source):
            assert module.startswith("./") and (STATIC / "js" / module[2:]).is_file(), module
        assert "eval(" not in source and "new Function" not in source
        assert ".style." not in source and 'setAttribute("style"' not in source
        assert "document.write" not in source and "insertAdjacentHTML" not in source
        uses = source.count("innerHTML")
        # Only the panels take HTML, which the server drew and escaped (rwq.web.panel_html).
        assert uses == (1 if script.stem == "panels" else 0), script.name


def test_the_pages_show_text_by_the_rule_of_printable() -> None:
    source = (STATIC / "js" / "printable.js").read_text(encoding="utf-8")
    ranges = re.findall(r"\[0x([0-9A-F]+), 0x([0-9A-F]+)\]", source)
    assert tuple((int(a, 16), int(b, 16)) for a, b in ranges) == _INVISIBLE
