"""The errors a host call can return to a plugin, each with its :class:`ErrorCode`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from rwq.errors import RwqError

__all__ = [
    "ERROR_DESCRIPTIONS",
    "ErrorCode",
    "HostCallError",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "UnknownFunction",
    "error_result",
]


class ErrorCode(StrEnum):
    """What kind of failure a host call met; plugins branch on it."""

    PERMISSION_DENIED = "permission_denied"
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    READ_ONLY = "read_only"
    QUOTA_EXCEEDED = "quota_exceeded"
    RATE_LIMITED = "rate_limited"
    UNKNOWN_FUNCTION = "unknown_function"
    INTERNAL = "internal"


ERROR_DESCRIPTIONS = {
    ErrorCode.PERMISSION_DENIED: "the plugin (or a plugin of its delegation chain) lacks the "
    "permission, or not for this queue; `permission` names it",
    ErrorCode.INVALID_ARGUMENT: "an argument is missing, unknown, of the wrong type or out of "
    "range; `argument` names it",
    ErrorCode.NOT_FOUND: "the queue, job, subscription or dependency does not exist",
    ErrorCode.READ_ONLY: "the host runs read-only and the call would change a queue",
    ErrorCode.QUOTA_EXCEEDED: "a per-plugin cap (storage keys or bytes, timers, subscriptions) "
    "would be exceeded; nothing changed",
    ErrorCode.RATE_LIMITED: "the plugin called this function too often; retry later",
    ErrorCode.UNKNOWN_FUNCTION: "no host function of that name",
    ErrorCode.INTERNAL: "the host failed (Redis unreachable, a bug); details are in the host log",
}


class HostCallError(RwqError):
    """A host call failed; ``code`` says how (:class:`ErrorCode`): its subclass's, or the one
    given when a failure of the queue is handed on (``read_only``)."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        plugin: str = "",
        function: str = "",
        permission: str | None = None,
        argument: str | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.plugin = plugin
        self.function = function
        self.permission = permission
        self.argument = argument
        super().__init__(f"{function}: {message}" if function else message)

    def made_by(self, plugin: str, function: str) -> HostCallError:
        """This error as raised by a call of ``function`` by ``plugin`` (a service raised it
        without knowing the call): the fields it lacks are set, the message names the
        function."""
        if not self.function and function:
            self.function = function
            self.args = (f"{function}: {self}",)
        self.plugin = self.plugin or plugin
        return self

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object a plugin receives."""
        out: dict[str, Any] = {"code": self.code.value, "message": str(self)}
        if self.permission is not None:
            out["permission"] = self.permission
        if self.argument is not None:
            out["argument"] = self.argument
        return out


class PermissionDenied(HostCallError):
    """The call needs a permission the caller (or its chain) was not granted here."""

    code = ErrorCode.PERMISSION_DENIED

    def __init__(
        self,
        plugin: str,
        function: str,
        permission: str | None,
        resource: str | None,
        reason: str,
        chain: tuple[str, ...] = (),
    ) -> None:
        self.resource = resource
        self.reason = reason
        self.chain = chain
        who = " -> ".join(chain) if chain else plugin
        if permission is None:
            text = f"plugin {who!r} refused: {reason}"
        else:
            where = f" on {resource!r}" if resource else ""
            text = f"plugin {who!r} may not use {permission}{where}: {reason}"
        super().__init__(text, plugin=plugin, function=function, permission=permission)


class InvalidArgument(HostCallError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFound(HostCallError):
    code = ErrorCode.NOT_FOUND


class QuotaExceeded(HostCallError):
    code = ErrorCode.QUOTA_EXCEEDED


class RateLimited(HostCallError):
    code = ErrorCode.RATE_LIMITED


class UnknownFunction(HostCallError):
    code = ErrorCode.UNKNOWN_FUNCTION


class InternalError(HostCallError):
    code = ErrorCode.INTERNAL


def error_result(exc: BaseException) -> dict[str, Any]:
    """``{"error": {"code", "message", "permission"?, "argument"?}}`` for a runtime to hand
    the plugin; anything but a :class:`HostCallError` becomes ``internal`` (no details leak)."""
    if not isinstance(exc, HostCallError):
        exc = InternalError("internal error (see the host log)")
    return {"error": exc.to_dict()}
