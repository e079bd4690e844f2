"""The API's errors: one JSON shape, ``{"error": {"code", "message", ...}}``, with the status
that says what went wrong, for every failure (rwq's errors, bad arguments, unknown routes),
never an HTML page or a traceback."""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from rwq.errors import RwqError
from rwq.plugins.engine.records import LifecycleError, UnknownPlugin
from rwq.queue.admin import AdminError, ReadOnlyMode, UnknownQueue
from rwq.queue.keys import InvalidQueueName
from rwq.web.models import JsonBody

__all__ = ["ApiError", "error_response", "install_error_handlers"]

log = logging.getLogger("rwq.web")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_argument",
    500: "internal",
    503: "redis_unavailable",
}


class ApiError(RwqError):
    """A refusal the API answers with ``status``; ``extra`` fields (``argument``,
    ``permission``, ``queue``) go into the error object beside the code and message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(message)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **extra}}
    return JsonBody(body, status_code=status, headers=headers)


def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": 'Bearer realm="rwq"'} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, headers, **exc.extra)


def _rwq_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, UnknownQueue):
        return error_response(404, "unknown_queue", str(exc), queue=exc.queue)
    if isinstance(exc, ReadOnlyMode):
        return error_response(409, "read_only", str(exc))
    if isinstance(exc, InvalidQueueName):
        return error_response(400, "bad_argument", str(exc), argument="queue")
    if isinstance(exc, UnknownPlugin):
        return error_response(404, "not_found", str(exc), argument="name")
    if isinstance(exc, LifecycleError):
        return error_response(409, "conflict", str(exc))
    if isinstance(exc, AdminError):
        return error_response(400, "bad_argument", str(exc))
    return error_response(400, "refused", str(exc))


def _redis_error(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("redis: %s", exc)
    return error_response(503, "redis_unavailable", f"redis: {exc}")


_UNION_MEMBER = re.compile(r"^(int|float|str|bool|none|[a-z-]+\[.*\])$")
"""A part of a validation error's location naming the union member tried, not a field."""


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    argument = None
    for item in exc.errors():
        if item.get("type") == "json_invalid":  # loc is ("body", <character position>)
            at = item.get("ctx", {}).get("error", "")
            problems.append(f"the body is not valid JSON{f': {at}' if at else ''}")
            argument = argument or "body"
            continue
        # ("query", "limit") -> query parameter 'limit'; ("body", "ids", 0) -> body field ids.0;
        # ("body", "delay", "int") -> body field delay (a member of its union: not a field)
        where = [str(part) for part in item.get("loc", ()) if not _UNION_MEMBER.match(str(part))]
        kind, path = (where[0], ".".join(where[1:])) if where else ("request", "")
        argument = argument or path or kind
        label = {"query": "query parameter", "path": "path parameter", "body": "body field"}
        shown = f"{label.get(kind, kind)} {path!r}" if path else f"the {kind}"
        problem = f"{shown}: {item.get('msg', 'invalid')}"
        if problem not in problems:
            problems.append(problem)
    message = "; ".join(problems) or "invalid request"
    return error_response(422, "invalid_argument", message, argument=argument)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404:
        message = "no such route (the API is under /api/v1; its schema is /openapi.json)"
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


def _internal_error(_request: Request, _exc: Exception) -> JSONResponse:
    return error_response(500, "internal", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure of ``app`` as the one JSON error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RwqError, _rwq_error)
    app.add_exception_handler(redis.RedisError, _redis_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
