"""Security headers on every response, and the last resort for a bug: a JSON 500 with those
headers instead of a traceback or an HTML page.

The Content-Security-Policy allows scripts, styles and connections from the server itself
only: no inline script or style, no other origin, no framing. Pages added later serve their
scripts as files under the app, never inline.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "SecurityHeaders"]

log = logging.getLogger("rwq.web")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """ASGI middleware: adds :data:`HEADERS` to every HTTP response (``no-store`` to the
    API's and to any that set no caching of their own; HSTS over TLS) and answers an
    unhandled exception with a JSON 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        api = scope["path"].startswith("/api/")
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not (api and k.lower() == b"cache-control")
                ]
                headers.extend(HEADERS)
                if api or not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append(NO_STORE)
                if tls:
                    headers.append(HSTS)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # FastAPI's own last resort has answered (JSON, see rwq.web.errors) unless the
            # failure came before it; the traceback goes to the log, never to the client.
            log.exception("unhandled error in %s %s", scope.get("method"), scope["path"])
            if started:
                return
            body = json.dumps(
                {"error": {"code": "internal", "message": "internal error; see the server log"}}
            ).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
