"""The ASGI app of ``rwq web``: the API under ``/api/v1`` (the live stream among it), its
OpenAPI schema at ``/openapi.json``, the web UI's pages and their ``/static`` files, JSON
errors, security headers.

:func:`create_app` returns the FastAPI app (routes are added to it); :func:`asgi` wraps it in
the security headers, which must be the outermost layer so that every response has them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rwq.web.api import api_router
from rwq.web.context import WebContext
from rwq.web.errors import install_error_handlers
from rwq.web.pages import pages_router, static_files
from rwq.web.security import SecurityHeaders
from rwq.web.tokens import TOKEN_PREFIX

__all__ = ["asgi", "create_app"]

DESCRIPTION = f"""The HTTP admin API of rwq. Every route needs a token (`rwq token create`),
sent as `Authorization: Bearer {TOKEN_PREFIX}<name>.<secret>`, or a browser session
(`POST /api/v1/session`, then the cookie and `X-CSRF-Token` on every POST). Each route needs
the permission of the plugin permission catalog its description names, on the queue it
touches. Errors are `{{"error": {{"code", "message"}}}}`."""


def create_app(context: WebContext) -> FastAPI:
    """The app serving ``context``; it opens the context (the asyncio Redis client, the plugin
    host) when it starts and closes it when it shuts down."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await context.open()
        try:
            yield
        finally:
            await context.aclose()

    app = FastAPI(
        title="rwq admin API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN and inline: the CSP
        redoc_url=None,  # forbids both. The schema is at /openapi.json.
        lifespan=lifespan,
    )
    app.state.rwq = context
    install_error_handlers(app)
    app.include_router(api_router())
    app.include_router(pages_router())
    app.mount("/static", static_files(), name="static")
    return app


def asgi(app: FastAPI) -> SecurityHeaders:
    """``app`` as served: every response with the security headers."""
    return SecurityHeaders(app)
