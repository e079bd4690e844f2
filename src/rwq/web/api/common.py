"""What the API's routes share: their documented error responses and the read-only guard."""

from __future__ import annotations

from typing import Any

from rwq.web.access import Principal
from rwq.web.context import WebContext
from rwq.web.errors import ApiError
from rwq.web.models import ErrorBody

__all__ = ["API_PREFIX", "errors", "refuse_in_read_only"]

API_PREFIX = "/api/v1"
"""Where the API lives; each resource's router carries it in its own prefix, so a route's
path (audited as the operation) is whole."""

_DESCRIPTIONS = {
    400: "A bad argument (named in `error.argument` or the message).",
    401: "No token, or one that is malformed, unknown, revoked or expired.",
    403: "The token lacks the permission (or the queue is outside its scope); a session's "
    "unsafe request lacks its CSRF token.",
    404: "Unknown queue or job.",
    409: "rwq is in read-only mode.",
    422: "A parameter or body field failed validation (named in `error.argument`).",
    503: "The server hosts no plugins (`--no-plugins`), or Redis is unreachable.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: 401, 403 and 422 always, plus ``statuses``."""
    codes = sorted({401, 403, 422, *statuses})
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def refuse_in_read_only(
    context: WebContext, principal: Principal, permission: str, queue: str | None
) -> None:
    """A 409 (audited) when rwq is read-only; called before the permission check, as the
    plugin host API refuses writes before it asks the grants."""
    if context.settings.read_only:
        principal.record(permission, queue, False, "read-only mode")
        raise ApiError(409, "read_only", f"{principal.operation} refused: rwq is in read-only mode")
