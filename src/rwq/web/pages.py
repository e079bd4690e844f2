"""The web UI's pages: an HTML shell per page, its script and the style sheet as files under
``/static`` (the Content-Security-Policy forbids inline script and style).

A shell holds no data: its script logs in (``/login``), then reads the API with the session
cookie and follows the live stream. Every value a page shows is put in with ``textContent``
(or, for plugin panels, as the HTML :mod:`rwq.web.panel_html` escaped).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["PAGES", "STATIC", "pages_router", "static_files"]

STATIC = Path(__file__).parent / "static"
PAGES: dict[str, str] = {
    "queues": "Queues",
    "dead-letters": "Dead letters",
    "workers": "Workers",
    "plugins": "Plugins",
    "panels": "Panels",
    "audit": "Audit log",
}
"""The pages of the navigation bar, by path, with their titles."""
_HIDDEN = {"login": "Log in", "queue": "Queue", "job": "Job"}


def page(name: str, title: str) -> str:
    """The HTML shell of page ``name``."""
    links = "".join(
        f'<a href="/{path}" data-nav="{path}">{html.escape(label)}</a>'
        for path, label in PAGES.items()
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · rwq</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/rwq.css">
<script type="module" src="/static/js/{name.replace("-", "_")}.js"></script>
</head>
<body data-page="{name}">
<header class="top">
<a class="brand" href="/queues">rwq</a>
<nav>{links}</nav>
<span id="live" class="live" title="live updates" hidden></span>
<span id="who" class="who"></span>
<button type="button" id="logout" class="quiet" hidden>Log out</button>
</header>
<div id="flash" class="flash" role="status" hidden></div>
<main id="main"><h1>{html.escape(title)}</h1></main>
</body>
</html>
"""


def _html(name: str, title: str) -> HTMLResponse:
    return HTMLResponse(page(name, title), headers={"Cache-Control": "no-store"})


def pages_router() -> APIRouter:
    """Every page's route (left out of the OpenAPI schema: they are not the API)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/queues", status_code=302)

    for path, title in PAGES.items():
        router.add_api_route(f"/{path}", _page_route(path, title), methods=["GET"])
    router.add_api_route("/login", _page_route("login", _HIDDEN["login"]), methods=["GET"])

    @router.get("/queues/{queue}")
    def queue_page(queue: str) -> HTMLResponse:
        return _html("queue", _HIDDEN["queue"])

    @router.get("/jobs/{job_id}")
    def job_page(job_id: str) -> HTMLResponse:
        return _html("job", _HIDDEN["job"])

    return router


def _page_route(name: str, title: str) -> Callable[[], HTMLResponse]:
    def show() -> HTMLResponse:
        return _html(name, title)

    show.__name__ = f"page_{name.replace('-', '_')}"
    return show


def static_files() -> StaticFiles:
    """The scripts and the style sheet."""
    return StaticFiles(directory=STATIC)
