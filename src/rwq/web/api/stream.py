"""``GET /api/v1/stream``: the live feed as Server-Sent Events.

Events, each one line of JSON: ``hello`` (what this stream sees), ``stats`` (every queue's
statistics inside the token's scope, once a second), ``plugins`` (the plugins' states, when
they change; ``system.config.read``), ``panel`` (a plugin panel as HTML, each time it changes;
``admin.stats.read`` on every queue), ``panel-gone`` (a plugin was removed) and ``bye`` (the
token was revoked or expired: the stream ends). A comment line keeps idle connections open.

Server-Sent Events rather than a WebSocket: the feed goes one way (clicks are ordinary POSTs
with their CSRF check), ``EventSource`` reconnects by itself, and the session cookie
authenticates it like any GET.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from rwq.web.access import Principal
from rwq.web.api.common import API_PREFIX, errors
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.live import LiveFeed, Subscriber, sse
from rwq.web.tokens import InvalidToken

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["stream"])
Context = Annotated[WebContext, Depends(web_context)]
KEEPALIVE = 15.0
"""Seconds of silence before a comment line keeps the connection open."""
RECHECK = 30.0
"""Seconds between two checks that the stream's token is still valid."""


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        **errors(503),
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-Sent Events: `hello`, `stats`, `plugins`, `panel`, "
            "`panel-gone`, `bye`.",
        },
    },
    summary="Live updates",
)
async def stream(principal: Authenticated, context: Context) -> StreamingResponse:
    """Statistics, plugin states and plugin panels as they change, as Server-Sent Events
    (`admin.stats.read`; panels need it on every queue, plugin states `system.config.read`)."""
    principal.require("admin.stats.read", listing=True)
    feed = context.live
    if feed is None:
        raise ApiError(503, "starting", "the server is starting or stopping")
    subscriber = feed.subscribe(principal)
    return StreamingResponse(
        _events(context, feed, subscriber),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


async def _events(
    context: WebContext, feed: LiveFeed, subscriber: Subscriber
) -> AsyncIterator[str]:
    checked = time.monotonic()
    try:
        while not feed.ending:
            messages = await subscriber.take(KEEPALIVE)
            if feed.ending:
                return
            if time.monotonic() - checked > RECHECK:
                checked = time.monotonic()
                reason = await _invalid(context, subscriber.principal)
                if reason is not None:
                    yield sse("bye", {"reason": reason})
                    return
            yield "".join(messages) if messages else ": keep-alive\n\n"
    finally:
        feed.unsubscribe(subscriber)


async def _invalid(context: WebContext, principal: Principal) -> str | None:
    """Why the stream's token no longer holds (revoked, replaced, expired), or None."""
    token = principal.token
    current = await context.tokens.get_async(context.aio_client, token.name)
    if current is None or current.secret_sha256 != token.secret_sha256:
        return f"token {token.name!r} was revoked"
    try:
        context.tokens.check_current(current)
    except InvalidToken as exc:
        return exc.reason
    return None
