"""``/api/v1/session``: a browser logs in with a token and gets a session cookie (HttpOnly,
SameSite=Strict, Secure over TLS) and a CSRF token for its unsafe requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from rwq.web.access import actor
from rwq.web.api.common import API_PREFIX, errors
from rwq.web.auth import Authenticated, check_same_origin, operation_of
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.models import SessionInfo, SessionRequest
from rwq.web.sessions import SESSION_COOKIE
from rwq.web.tokens import InvalidToken

__all__ = ["router"]

router = APIRouter(prefix=f"{API_PREFIX}/session", tags=["session"])
Context = Annotated[WebContext, Depends(web_context)]


def _info(
    context: WebContext, name: str, expires_at: float | None, csrf: str | None
) -> SessionInfo:
    token = context.tokens.get(name)
    permissions = sorted(token.granted) if token else []
    queues = list(token.queues) if token else []
    return SessionInfo(
        token=name, permissions=permissions, queues=queues, expires_at=expires_at, csrf_token=csrf
    )


@router.post("", response_model=SessionInfo, responses=errors(), summary="Log in")
def log_in(
    body: SessionRequest, request: Request, response: Response, context: Context
) -> SessionInfo:
    """Exchange a token for a session cookie; the answer carries the CSRF token to send as
    `X-CSRF-Token` on every POST of the session. A browser's login from a page of another
    origin is refused (403 `cross_origin`)."""
    check_same_origin(request)
    try:
        token = context.tokens.authenticate(body.token)
    except InvalidToken as exc:
        if exc.name is not None and context.audit is not None:
            context.audit.record(
                actor(exc.name), f"authenticate:{operation_of(request)}", "", False,
                reason=exc.reason,
            )  # fmt: skip
        raise ApiError(401, "unauthorized", exc.reason) from None
    now = context.tokens.clock()
    session_id, session = context.sessions.create(token, now)
    if context.audit is not None:
        context.audit.record(
            actor(token.name), f"session:{operation_of(request)}", "", True,
            reason="logged in",
        )  # fmt: skip
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=max(1, int(session.expires_at - now)), path="/",
        httponly=True, samesite="strict", secure=context.tls,
    )  # fmt: skip
    return _info(context, token.name, session.expires_at, session.csrf)


@router.get("", response_model=SessionInfo, responses=errors(), summary="Who am I")
def who_am_i(request: Request, principal: Authenticated, context: Context) -> SessionInfo:
    """The token the request is authenticated as: its permissions and queues; for a
    session, also its CSRF token (a page loaded later in the session needs it, and no other
    origin can read this answer)."""
    if principal.via == "session":
        session = context.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            return _info(context, principal.token.name, session.expires_at, session.csrf)
    return _info(context, principal.token.name, principal.token.expires_at, None)


@router.delete("", status_code=204, responses=errors(), summary="Log out")
def log_out(request: Request, principal: Authenticated, context: Context) -> Response:
    """End the session (its cookie is cleared)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        context.sessions.delete(cookie)
        principal.done("logged out")
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
