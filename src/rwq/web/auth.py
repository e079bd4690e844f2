"""Who a request is: a token in ``Authorization: Bearer``, or a browser session's cookie (with
its CSRF token on unsafe methods). No token, or one that is malformed, unknown, revoked or
expired: 401, audited when the token named itself."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from rwq.web.access import Principal, actor
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.sessions import CSRF_HEADER, SESSION_COOKIE
from rwq.web.tokens import ApiToken, InvalidToken

__all__ = ["Authenticated", "authenticated", "check_same_origin", "operation_of"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def operation_of(request: Request) -> str:
    """The route a request matched, as audited: ``POST /api/v1/queues/{queue}/purge``."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return f"{request.method} {path}"


def target_of(request: Request) -> str:
    """What the route acts on, from its path parameters: ``counter`` for
    ``/api/v1/plugins/counter/disable`` (empty for a route without one)."""
    return " ".join(str(value) for value in request.path_params.values())


def check_same_origin(request: Request) -> None:
    """A 403 when a browser says the request comes from a page of another origin (its
    ``Origin`` header): a login or a session's change is made from rwq's own pages only.
    Requests without the header (programs, same-origin GETs) pass."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    parts = urlsplit(origin)
    if parts.scheme != request.url.scheme or parts.netloc != request.headers.get("host"):
        raise ApiError(403, "cross_origin", f"a request from {origin!r} is not from this server")


def _unauthorized(context: WebContext, request: Request, reason: str, name: str | None) -> ApiError:
    if name is not None and context.audit is not None:
        context.audit.record(
            actor(name), f"authenticate:{operation_of(request)}", "", False, reason=reason
        )
    return ApiError(401, "unauthorized", reason)


async def authenticated(
    request: Request, context: Annotated[WebContext, Depends(web_context)]
) -> Principal:
    """The :class:`Principal` of ``request``, or a 401 (a FastAPI dependency).

    Async, on the server's asyncio Redis client: the check costs no hop to the thread pool
    (the route takes one), and a slow Redis never blocks the event loop."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise _unauthorized(context, request, "use 'Authorization: Bearer <token>'", None)
        try:
            token = await context.tokens.authenticate_async(context.aio_client, presented)
        except InvalidToken as exc:
            raise _unauthorized(context, request, exc.reason, exc.name) from None
        return Principal(token, "bearer", operation_of(request), context.audit, target_of(request))
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise _unauthorized(
            context,
            request,
            "no token: send 'Authorization: Bearer <token>' (see `rwq token create`) or log "
            "in at POST /api/v1/session",
            None,
        )
    token = await _session_token(context, request, cookie)
    return Principal(token, "session", operation_of(request), context.audit, target_of(request))


async def _session_token(context: WebContext, request: Request, cookie: str) -> ApiToken:
    client = context.aio_client
    session = await context.sessions.get_async(client, cookie)
    if session is None:
        raise _unauthorized(context, request, "session expired or ended: log in again", None)
    token = await context.tokens.get_async(client, session.token_name)
    if token is None or not session.belongs_to(token):
        raise _unauthorized(context, request, "the session's token was revoked", session.token_name)
    try:
        context.tokens.check_current(token)
    except InvalidToken as exc:
        raise _unauthorized(context, request, exc.reason, token.name) from None
    if request.method not in SAFE_METHODS:
        check_same_origin(request)
    if request.method not in SAFE_METHODS and not session.csrf_matches(
        request.headers.get(CSRF_HEADER)
    ):
        if context.audit is not None:
            context.audit.record(
                actor(token.name), f"csrf:{operation_of(request)}", "", False,
                reason=f"missing or wrong {CSRF_HEADER} header",
            )  # fmt: skip
        raise ApiError(
            403,
            "csrf",
            f"a session's {request.method} needs the {CSRF_HEADER} header its login returned",
        )
    if context.tokens.due(token.name):
        await client.hset(
            context.broker.keys.web_tokens_used, token.name, f"{context.tokens.clock():.3f}"
        )
    return token


Authenticated = Annotated[Principal, Depends(authenticated)]
"""A route parameter: the request's principal (401 before the route runs when there is
none)."""
