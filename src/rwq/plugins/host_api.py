"""The host API: every function a plugin may call, in one documented module.

This is the host side of the plugin boundary (the plugin side, the hooks, is
:mod:`rwq.plugins.runtimes.base`). :data:`HOST_FUNCTIONS` declares each function: its
permission, its parameters with their types and limits, its result and whether it is
destructive; ``docs/host-api.md`` is generated from it (``python -m rwq.plugins.host_api``)
and the same declarations validate every call. :class:`HostAPI` is the one entry runtimes
route imported host functions through (:data:`rwq.plugins.runtimes.base.HostCall`):

1. the caller is the plugin the runtime bound, never anything in the arguments;
2. the arguments are checked against the declaration (unknown keys, types, ranges, sizes);
3. writes are refused in read-only mode;
4. the permission is checked against the grant store on every queue the call touches, for the
   plugin's loaded version and bundle hash (a delegated call checks the whole chain); the
   grant store audits each check, and refusals before the check are audited here;
5. per-plugin rate limits and caps apply (notifications, timers, subscriptions);
6. the result is made JSON-safe; every failure is a :class:`HostCallError` with a ``code``.
"""

from __future__ import annotations

import contextvars
import fnmatch
import heapq
import itertools
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Final

from rwq.errors import RwqError
from rwq.plugins.audit import AuditLog
from rwq.plugins.bus import BusError, EventBus
from rwq.plugins.events import (
    ALERT_RAISED,
    EventTypeError,
    json_safe,
    local_event,
    plugin_event_type,
)
from rwq.plugins.feed import HealthSampler
from rwq.plugins.grants import GrantStore
from rwq.plugins.permissions import CATALOG
from rwq.plugins.storage import PluginStorage, StorageError, StorageQuotaExceeded
from rwq.queue.admin import PEEK_TARGETS, Admin, AdminError, ReadOnlyMode, UnknownQueue
from rwq.queue.job import MAX_PRIORITY, MIN_PRIORITY, JobError
from rwq.queue.keys import InvalidQueueName
from rwq.queue.producer import Producer

__all__ = [
    "ALERT_RAISED",
    "HOST_FUNCTIONS",
    "DependencyCall",
    "ErrorCode",
    "HostAPI",
    "HostCallError",
    "HostFunctionSpec",
    "HostPermissionDenied",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "Param",
    "PluginBinding",
    "QuotaExceeded",
    "Rate",
    "RateLimited",
    "ReadOnly",
    "TimerFired",
    "TimerTable",
    "UnknownFunction",
    "error_result",
    "render_markdown",
    "validate_arguments",
]

log = logging.getLogger(__name__)

MAX_TIMERS = 16
MIN_TIMER_MS = 50
MAX_SUBSCRIPTIONS = 64
MAX_CHAIN = 4
"""Longest delegation chain (caller, its dependency, that one's dependency, ...)."""

_IDENTITY_KEYS = frozenset(
    {"plugin", "caller", "from", "source", "chain", "identity", "as", "on_behalf_of", "sender"}
)
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_CHAIN: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "rwq_host_call_chain", default=()
)


# -- errors ---------------------------------------------------------------------------------


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


_ERROR_DESCRIPTIONS = {
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
    """A host call failed; ``code`` says how (:class:`ErrorCode`)."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        plugin: str = "",
        function: str = "",
        permission: str | None = None,
        argument: str | None = None,
    ) -> None:
        self.plugin = plugin
        self.function = function
        self.permission = permission
        self.argument = argument
        super().__init__(f"{function}: {message}" if function else message)

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object a plugin receives."""
        out: dict[str, Any] = {"code": self.code.value, "message": str(self)}
        if self.permission is not None:
            out["permission"] = self.permission
        if self.argument is not None:
            out["argument"] = self.argument
        return out


class HostPermissionDenied(HostCallError):
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


class ReadOnly(HostCallError):
    code = ErrorCode.READ_ONLY


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


# -- declarations ---------------------------------------------------------------------------


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


class _PluginQueues:
    def __repr__(self) -> str:
        return "PLUGIN_QUEUES"


REQUIRED: Final = _Required()
PLUGIN_QUEUES: Final = _PluginQueues()
"""Default of ``subscribe``'s ``queues``: the plugin's queue scope (:class:`PluginBinding`)."""

ParamType = str
"""``string``, ``integer``, ``number``, ``boolean``, ``object``, ``json`` (any JSON value) or
``string[]``."""


@dataclass(frozen=True)
class Param:
    """One parameter of a host function."""

    name: str
    type: ParamType
    description: str
    default: Any = REQUIRED
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    """Characters of a string, items of a list, bytes of the JSON of an object or value."""
    pattern: str | None = None
    """A regex every string (or list item) must match."""
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Rate:
    """At most ``count`` calls per ``per`` seconds per plugin (a token bucket)."""

    count: int
    per: float


QueueTargets = Callable[[Mapping[str, Any]], Sequence[str | None]]
"""The queues (or queue globs) a call touches, from its arguments; ``None`` means every
queue, which only a grant unrestricted in queues allows."""


def _no_queue(_args: Mapping[str, Any]) -> Sequence[str | None]:
    return (None,)


def _arg(name: str) -> QueueTargets:
    return lambda args: (args[name],)


@dataclass(frozen=True)
class HostFunctionSpec:
    """One host function a plugin may import."""

    name: str
    permission: str | None
    """The catalog permission it needs; None for functions every plugin may call."""
    params: tuple[Param, ...]
    returns: str
    description: str
    destructive: bool = False
    """Deletes or moves jobs in bulk (approval prompts warn)."""
    writes: bool = False
    """Changes a queue: refused in read-only mode."""
    queues: QueueTargets = _no_queue
    """The queues the permission is checked on (queue-scoped permissions)."""
    scope: str = ""
    """How :attr:`queues` reads, for the docs."""
    rate: Rate | None = None
    limits: str = ""
    """Caps beyond the parameters', for the docs."""


_QUEUE_RE = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_QUEUE_GLOB_RE = r"^[A-Za-z0-9._:*?-]{1,128}$"
_NAME_RE = r"^[A-Za-z0-9_.-]{1,64}$"
_KIB = 1024
_YEAR_S = 366 * 86400


def _queue(description: str = "The queue.", **options: Any) -> Param:
    return Param("queue", "string", description, pattern=_QUEUE_RE, **options)


def _optional_queue(description: str) -> Param:
    return _queue(description, default=None, nullable=True)


_STORAGE_KEY = Param("key", "string", "The key (1-256 UTF-8 bytes, printable).", max_length=256)

_SPECS: tuple[HostFunctionSpec, ...] = (
    HostFunctionSpec(
        "subscribe", "events.subscribe",
        (
            Param("type", "string", "An event type or pattern (`job.*`, `plugin.other.*`).",
                  max_length=200, pattern=r"^[A-Za-z0-9_.*?-]+$"),
            Param("queues", "string[]", "Queue globs the events must come from.",
                  default=PLUGIN_QUEUES, max_length=32, pattern=_QUEUE_GLOB_RE),
            Param("interval", "number", "Seconds between sampled events (`queue.stats`).",
                  default=None, nullable=True, minimum=0.2, maximum=3600),
            Param("rate_limit", "number", "Most events per second this subscription takes.",
                  default=None, nullable=True, minimum=0.01, maximum=100_000),
        ),
        '{"id": string}', "Receive events (delivered to `on_event`).",
        queues=lambda a: tuple(a["queues"]), scope="every glob of `queues`",
        limits=f"{MAX_SUBSCRIPTIONS} subscriptions per plugin",
    ),
    HostFunctionSpec(
        "unsubscribe", None,
        (Param("id", "string", "A subscription id `subscribe` returned.", max_length=64),),
        "null", "Cancel one of the plugin's own subscriptions.",
    ),
    HostFunctionSpec(
        "enqueue_job", "admin.queue.enqueue",
        (
            _queue(),
            Param("payload", "json", "The job's payload.", max_length=512 * _KIB),
            Param("priority", "integer", "Higher runs first.", default=5,
                  minimum=MIN_PRIORITY, maximum=MAX_PRIORITY),
            Param("tenant", "string", "Tenant the job belongs to.", default=None,
                  nullable=True, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$"),
            Param("delay", "number", "Seconds before the job may run.", default=None,
                  nullable=True, minimum=0, maximum=30 * 86400),
        ),
        "job", "Enqueue a job.", writes=True, queues=_arg("queue"), scope="`queue`",
    ),
    HostFunctionSpec(
        "peek_job", "admin.queue.peek",
        (
            _queue(),
            Param("n", "integer", "How many jobs.", default=1, minimum=1, maximum=100),
            Param("state", "string", "Which jobs.", default="pending", choices=PEEK_TARGETS),
        ),
        "[job]", "The next `n` jobs of a state (pending in run order, dead newest first).",
        queues=_arg("queue"), scope="`queue`",
    ),
    HostFunctionSpec(
        "list_dead", "admin.queue.peek",
        (
            Param("queue", "string", "Only this queue's dead letters, or those of the queues "
                  "a glob (`tenant.*`) matches (null: every queue).", default=None,
                  nullable=True, pattern=_QUEUE_GLOB_RE),
            Param("tenant", "string", "Only this tenant's.", default=None, nullable=True,
                  max_length=128),
            Param("error", "string", "Only those whose error contains this (any case).",
                  default=None, nullable=True, max_length=256),
            Param("offset", "integer", "Skip this many.", default=0, minimum=0,
                  maximum=1_000_000),
            Param("limit", "integer", "At most this many.", default=50, minimum=1, maximum=500),
            Param("older_than_s", "number", "Only those dead-lettered at least this many "
                  "seconds ago.", default=None, nullable=True, minimum=0, maximum=_YEAR_S),
            Param("newer_than_s", "number", "Only those dead-lettered at most this many "
                  "seconds ago.", default=None, nullable=True, minimum=0, maximum=_YEAR_S),
        ),
        '{"total": integer, "jobs": [job]}', "Dead letters, newest first, filtered and paged.",
        queues=_arg("queue"), scope="`queue`, a name or glob (null: every queue)",
    ),
    HostFunctionSpec(
        "requeue_job", "admin.job.requeue",
        (_queue(), Param("job_id", "string", "The dead job's id.",
                         pattern=r"^[A-Za-z0-9._:-]{1,64}$")),
        '{"requeued": 1}', "Move one dead letter back to pending (`not_found` if not dead).",
        writes=True, queues=_arg("queue"), scope="`queue`",
    ),
    HostFunctionSpec(
        "requeue_jobs", "admin.queue.requeue",
        (
            _optional_queue("Requeue from this queue (null: every queue)."),
            Param("ids", "string[]", "Dead job ids (or give `all`).", default=(),
                  max_length=1000, pattern=r"^[A-Za-z0-9._:-]{1,64}$"),
            Param("all", "boolean", "Every dead letter (of `queue`).", default=False),
            Param("to", "string", "Move them to this queue instead of their own.",
                  default=None, nullable=True, pattern=_QUEUE_RE),
        ),
        '{"requeued": integer}', "Move dead letters back to pending in bulk.",
        destructive=True, writes=True,
        queues=lambda a: (a["queue"], *((a["to"],) if a["to"] is not None else ())),
        scope="`queue` (null: every queue) and `to`",
    ),
    HostFunctionSpec(
        "purge_queue", "admin.queue.purge",
        (
            _queue(),
            Param("target", "string", "`pending` (pending and scheduled jobs), `dead` or "
                  "`all` (pending, scheduled, dead and completed history).",
                  default="pending", choices=("pending", "dead", "all")),
        ),
        '{"purged": integer}', "Delete a queue's jobs permanently (running jobs are kept).",
        destructive=True, writes=True, queues=_arg("queue"), scope="`queue`",
    ),
    HostFunctionSpec(
        "delete_dead", "admin.queue.purge",
        (
            _queue(),
            Param("ids", "string[]", "Ids of the queue's dead letters to delete.",
                  max_length=1000, pattern=r"^[A-Za-z0-9._:-]{1,64}$"),
        ),
        '{"deleted": integer}',
        "Delete chosen dead letters permanently, in one atomic step (ids that are not dead "
        "letters of `queue` are skipped).",
        destructive=True, writes=True, queues=_arg("queue"), scope="`queue`",
    ),
    HostFunctionSpec(
        "pause_queue", "admin.queue.pause", (_queue(),),
        '{"changed": boolean}', "Stop workers taking jobs from a queue.",
        writes=True, queues=_arg("queue"), scope="`queue`",
    ),
    HostFunctionSpec(
        "resume_queue", "admin.queue.pause", (_queue(),),
        '{"changed": boolean}', "Let workers take jobs from a paused queue again.",
        writes=True, queues=_arg("queue"), scope="`queue`",
    ),
    HostFunctionSpec(
        "get_queue_stats", "admin.stats.read",
        (_optional_queue("Only this queue (null: every queue)."),),
        '{"queues": [stats], "workers": integer, "taken_at": number}',
        "Queue statistics (depths, totals, throughput, oldest pending age).",
        queues=_arg("queue"), scope="`queue` (null: every queue)",
    ),
    HostFunctionSpec(
        "get_system_stats", "admin.system.stats", (),
        '{"workers", "queues", "redis_used_memory", "redis_latency_ms", "rss_bytes", '
        '"cpu_percent", "taken_at"}',
        "Registered workers, queue count, Redis memory and latency, host RSS and CPU.",
    ),
    HostFunctionSpec(
        "log", None,
        (
            Param("level", "string", "Severity.", choices=("debug", "info", "warning", "error")),
            Param("message", "string", "The line.", max_length=4096),
        ),
        "null", "Write a line to the host log, tagged with the plugin.", rate=Rate(100, 1.0),
    ),
    HostFunctionSpec(
        "show_notification", "ui.notifications",
        (
            Param("message", "string", "The text.", max_length=500),
            Param("level", "string", "Style.", default="info",
                  choices=("info", "success", "warning", "error")),
        ),
        "null", "Show a notification in the TUI.", rate=Rate(5, 10.0),
    ),
    HostFunctionSpec(
        "set_timer", None,
        (
            Param("id", "string", "The timer's name (setting it again replaces it).",
                  pattern=_NAME_RE),
            Param("interval_ms", "integer", "Milliseconds until it fires (and between firings).",
                  minimum=MIN_TIMER_MS, maximum=86_400_000),
            Param("repeat", "boolean", "Fire every interval (else once).", default=True),
        ),
        "null", "Have `on_timer({id, ts})` called after an interval.",
        limits=f"{MAX_TIMERS} timers per plugin",
    ),
    HostFunctionSpec(
        "clear_timer", None, (Param("id", "string", "The timer's name.", pattern=_NAME_RE),),
        '{"cleared": boolean}', "Cancel a timer.",
    ),
    HostFunctionSpec(
        "storage_get", "storage.read", (_STORAGE_KEY,),
        "string or null", "Read a value of the plugin's own store.",
    ),
    HostFunctionSpec(
        "storage_set", "storage.write",
        (_STORAGE_KEY, Param("value", "string", "The value (JSON text by convention).",
                             max_length=64 * _KIB)),
        '{"keys", "bytes", "max_keys", "max_bytes"}',
        "Write a value; refused with `quota_exceeded` past the manifest's storage quota.",
        limits="manifest `resources.max_storage` (bytes of keys + values) and "
        "`max_storage_keys`",
    ),
    HostFunctionSpec(
        "storage_delete", "storage.write", (_STORAGE_KEY,),
        '{"deleted": boolean}', "Delete a key.",
    ),
    HostFunctionSpec(
        "storage_list", "storage.read",
        (
            Param("prefix", "string", "Only keys starting with this.", default="",
                  max_length=256),
            Param("limit", "integer", "At most this many.", default=100, minimum=1,
                  maximum=1000),
        ),
        "[string]", "The plugin's keys, sorted.",
    ),
    HostFunctionSpec(
        "storage_usage", "storage.read", (),
        '{"keys", "bytes", "max_keys", "max_bytes"}', "What the plugin's store holds.",
    ),
    HostFunctionSpec(
        "emit", None,
        (
            Param("type", "string", "The event name; published as `plugin.<caller>.<type>`.",
                  pattern=r"^[a-z0-9_][a-z0-9_.-]{0,63}$"),
            Param("data", "object", "The event's data.", default={}, max_length=16 * _KIB),
        ),
        '{"id": string, "type": string}',
        "Publish an event other plugins may subscribe to (they need `events.subscribe`).",
        rate=Rate(200, 1.0),
    ),
    HostFunctionSpec(
        "send_alert", "admin.alerts.send",
        (
            Param("severity", "string", "How bad.", choices=("info", "warning", "critical")),
            Param("title", "string", "One line.", max_length=200),
            Param("message", "string", "The details.", max_length=4000),
            Param("key", "string", "Deduplication key (same key: same alert).", default=None,
                  nullable=True, max_length=128),
            Param("repeat", "boolean", "The same incident still going on (the alert is kept "
                  "current; an acknowledged one stays acknowledged).", default=False),
        ),
        '{"id": string}', f"Publish `{ALERT_RAISED}` (`data.from` is the caller).",
        rate=Rate(30, 60.0),
    ),
    HostFunctionSpec(
        "call_dependency", None,
        (
            Param("plugin", "string", "A dependency the caller's manifest declares.",
                  pattern=r"^[a-z0-9-]{1,64}$"),
            Param("function", "string", "The function the dependency exports.",
                  pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"),
            Param("args", "json", "Its argument.", default=None, nullable=True,
                  max_length=256 * _KIB),
        ),
        "its result",
        "Call a declared dependency; its host calls are checked against the intersection of "
        "both plugins' grants and audited with the chain.",
        limits=f"chains of at most {MAX_CHAIN} plugins, no cycles",
    ),
)  # fmt: skip

HOST_FUNCTIONS: dict[str, HostFunctionSpec] = {spec.name: spec for spec in _SPECS}
"""Every host function, by name."""


# -- validation -----------------------------------------------------------------------------


class _Bad(Exception):
    """A parameter's value is refused (turned into :class:`InvalidArgument`)."""


MAX_JSON_DEPTH = 64
"""Objects and lists in an argument nest at most this deep."""


def _json_size(value: Any) -> int:
    _check_depth(value)
    try:
        return len(_JSON.encode(value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Bad(f"not a JSON value ({exc})") from None


def _check_depth(value: Any) -> None:
    """Refuse nesting deeper than :data:`MAX_JSON_DEPTH` and strings that are not text (lone
    surrogates), without recursing."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list | tuple):
            if depth > MAX_JSON_DEPTH:
                raise _Bad(f"nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    if not text.isascii() and any("\ud800" <= c <= "\udfff" for c in text):
        raise _Bad("holds a lone surrogate (not text)")


def _checker(p: Param) -> Callable[[Any], Any]:
    """A function that returns the checked value of ``p`` or raises :class:`_Bad`."""
    regex = re.compile(p.pattern) if p.pattern else None
    choices = frozenset(p.choices)

    def in_range(value: float) -> None:
        if p.minimum is not None and value < p.minimum:
            raise _Bad(f"must be at least {p.minimum:g}, got {_number_shown(value)}")
        if p.maximum is not None and value > p.maximum:
            raise _Bad(f"must be at most {p.maximum:g}, got {_number_shown(value)}")

    def string(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {_kind(value)}")
        _check_text(value)
        if p.max_length is not None and len(value) > p.max_length:
            raise _Bad(f"at most {p.max_length} characters, got {len(value)}")
        if choices and value not in choices:
            raise _Bad(f"must be one of {', '.join(p.choices)}, got {value[:64]!r}")
        if regex is not None and not regex.fullmatch(value):
            raise _Bad(f"{value[:64]!r} does not match {p.pattern}")
        return value

    def check(value: Any) -> Any:
        if value is None:
            if p.nullable:
                return None
            raise _Bad("may not be null")
        kind = p.type
        if kind == "string":
            return string(value)
        if kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise _Bad(f"expected an integer, got {_kind(value)}")
            in_range(value)
            return value
        if kind == "number":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _Bad(f"expected a number, got {_kind(value)}")
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                raise _Bad(f"must be a finite number, got {_number_shown(value)}")
            in_range(value)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise _Bad(f"expected true or false, got {_kind(value)}")
            return value
        if kind == "string[]":
            if not isinstance(value, list | tuple):
                raise _Bad(f"expected a list of strings, got {_kind(value)}")
            if p.max_length is not None and len(value) > p.max_length:
                raise _Bad(f"at most {p.max_length} items, got {len(value)}")
            return tuple(string(v) for v in value)
        if kind == "object" and not (
            isinstance(value, dict) and all(isinstance(k, str) for k in value)
        ):
            raise _Bad(f"expected an object, got {_kind(value)}")
        size = _json_size(value)  # object and json
        if p.max_length is not None and size > p.max_length:
            raise _Bad(f"at most {p.max_length} bytes of JSON, got {size}")
        return value

    return check


def _number_shown(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


_Checkers = tuple[tuple[str, Callable[[Any], Any], Any], ...]
_CHECKERS: dict[str, _Checkers] = {
    spec.name: tuple((p.name, _checker(p), p.default) for p in spec.params) for spec in _SPECS
}
_PARAM_NAMES = {spec.name: frozenset(p.name for p in spec.params) for spec in _SPECS}


def validate_arguments(
    spec: HostFunctionSpec, args: Any, plugin_queues: tuple[str, ...]
) -> dict[str, Any]:
    """The arguments of a call checked against ``spec``, defaults filled in."""
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        raise InvalidArgument(f"arguments must be an object, got {_kind(args)}", function=spec.name)
    names = _PARAM_NAMES[spec.name]
    for key in args:
        if key not in names:
            if key in _IDENTITY_KEYS:
                raise InvalidArgument(
                    f"{key!r} is not an argument: a call always acts as the calling plugin",
                    function=spec.name,
                    argument=str(key),
                )
            known = ", ".join(p.name for p in spec.params) or "none"
            raise InvalidArgument(
                f"unknown argument {str(key)[:64]!r} (arguments: {known})",
                function=spec.name,
                argument=str(key)[:64],
            )
    out: dict[str, Any] = {}
    for name, check, default in _CHECKERS[spec.name]:
        if name in args:
            try:
                out[name] = check(args[name])
            except _Bad as exc:
                raise InvalidArgument(f"{name}: {exc}", function=spec.name, argument=name) from None
        elif default is REQUIRED:
            raise InvalidArgument(f"{name} is required", function=spec.name, argument=name)
        elif default is PLUGIN_QUEUES:
            out[name] = plugin_queues
        else:
            out[name] = default
    return out


# -- rate limits and timers -----------------------------------------------------------------


class _Buckets:
    """Token buckets per (plugin, function); thread-safe."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], tuple[float, float]] = {}
        self.refused: Counter[tuple[str, str]] = Counter()

    def take(self, plugin: str, function: str, rate: Rate) -> bool:
        key = (plugin, function)
        now = self._clock()
        with self._lock:
            tokens, stamp = self._state.get(key, (float(rate.count), now))
            tokens = min(float(rate.count), tokens + (now - stamp) * rate.count / rate.per)
            if tokens < 1.0:
                self._state[key] = (tokens, now)
                self.refused[key] += 1
                return False
            self._state[key] = (tokens - 1.0, now)
            return True

    def forget(self, plugin: str) -> None:
        with self._lock:
            for key in [k for k in self._state if k[0] == plugin]:
                del self._state[key]


@dataclass(frozen=True)
class TimerFired:
    """A timer that came due: call the plugin's ``on_timer`` with :meth:`argument`."""

    plugin: str
    id: str
    ts: float
    """Epoch milliseconds when it was found due."""

    def argument(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts}


@dataclass
class _Timer:
    interval: float
    repeat: bool
    due: float
    generation: int


class TimerTable:
    """Plugins' timers. The lifecycle manager polls :meth:`due` (sleeping until
    :meth:`next_due`) and calls each plugin's ``on_timer``. Thread-safe.

    Args:
        max_per_plugin: timers one plugin may hold at once.
        min_interval_ms: the shortest interval allowed.
        clock: monotonic seconds.
        wall: epoch seconds, for :attr:`TimerFired.ts`.
    """

    def __init__(
        self,
        *,
        max_per_plugin: int = MAX_TIMERS,
        min_interval_ms: int = MIN_TIMER_MS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_per_plugin = max_per_plugin
        self.min_interval_ms = min_interval_ms
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._timers: dict[tuple[str, str], _Timer] = {}
        self._counts: Counter[str] = Counter()
        self._heap: list[tuple[float, int, str, str]] = []
        self._generations = itertools.count(1)

    def set(self, plugin: str, timer_id: str, interval_ms: int, repeat: bool = True) -> None:
        """Start (or restart) a timer firing ``interval_ms`` from now.

        Raises:
            QuotaExceeded: the plugin already holds ``max_per_plugin`` other timers.
            InvalidArgument: the interval is under ``min_interval_ms``.
        """
        if interval_ms < self.min_interval_ms:
            raise InvalidArgument(
                f"interval_ms must be at least {self.min_interval_ms}, got {interval_ms}",
                function="set_timer",
                argument="interval_ms",
            )
        key = (plugin, timer_id)
        with self._lock:
            if key not in self._timers and self._counts[plugin] >= self.max_per_plugin:
                raise QuotaExceeded(
                    f"plugin {plugin!r} already has {self.max_per_plugin} timers; clear one first",
                    plugin=plugin,
                    function="set_timer",
                )
            if key not in self._timers:
                self._counts[plugin] += 1
            interval = interval_ms / 1000
            timer = _Timer(interval, repeat, self._clock() + interval, next(self._generations))
            self._timers[key] = timer
            heapq.heappush(self._heap, (timer.due, timer.generation, plugin, timer_id))

    def clear(self, plugin: str, timer_id: str) -> bool:
        """Cancel a timer; False if the plugin had none of that name."""
        with self._lock:
            return self._drop((plugin, timer_id))

    def clear_all(self, plugin: str) -> int:
        """Cancel every timer of ``plugin`` (it unloaded); returns how many."""
        with self._lock:
            mine = [key for key in self._timers if key[0] == plugin]
            for key in mine:
                self._drop(key)
            return len(mine)

    def _drop(self, key: tuple[str, str]) -> bool:
        if self._timers.pop(key, None) is None:
            return False
        self._counts[key[0]] -= 1
        if not self._counts[key[0]]:
            del self._counts[key[0]]
        return True  # its heap entry is skipped when it surfaces

    def count(self, plugin: str) -> int:
        return self._counts.get(plugin, 0)

    def next_due(self) -> float | None:
        """The clock time the earliest timer comes due, or None without timers."""
        with self._lock:
            while self._heap:
                due, generation, plugin, timer_id = self._heap[0]
                timer = self._timers.get((plugin, timer_id))
                if timer is not None and timer.generation == generation:
                    return due
                heapq.heappop(self._heap)
            return None

    def due(self, now: float | None = None) -> list[TimerFired]:
        """The timers due at ``now`` (the clock's time by default), earliest first. Repeating
        timers are rescheduled one interval on (never to catch up missed firings), one-shot
        timers removed."""
        now = self._clock() if now is None else now
        fired: list[TimerFired] = []
        with self._lock:
            ts = self._wall() * 1000
            while self._heap and self._heap[0][0] <= now:
                due, generation, plugin, timer_id = heapq.heappop(self._heap)
                key = (plugin, timer_id)
                timer = self._timers.get(key)
                if timer is None or timer.generation != generation:
                    continue
                fired.append(TimerFired(plugin, timer_id, ts))
                if timer.repeat:
                    timer.due = due + timer.interval
                    if timer.due <= now:  # late by a whole interval: skip, don't catch up
                        timer.due = now + timer.interval
                    timer.generation = next(self._generations)
                    heapq.heappush(self._heap, (timer.due, timer.generation, plugin, timer_id))
                else:
                    self._drop(key)
        return fired


# -- the API --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginBinding:
    """What the host loaded of a plugin: checks run against this version and bundle hash."""

    version: str
    bundle_hash: str
    queues: tuple[str, ...] = ("*",)
    """The plugin's queue scope (what its grant of ``events.subscribe`` is limited to): the
    default ``queues`` of a ``subscribe`` call."""


DependencyCall = Callable[[tuple[str, ...], str, str, Any], Any]
"""``call_plugin(chain, plugin, function, args) -> result``: run ``function`` of the loaded
plugin ``plugin`` (the lifecycle manager provides it). ``chain`` is the caller first and
``plugin`` last; the callee's own host calls must reach :meth:`HostAPI.call` in the same
thread (the chain travels in a context variable) or pass ``chain=``."""

Notify = Callable[[str, str, str], None]
"""``(plugin, message, level)``."""
LogSink = Callable[[str, str, str], None]
"""``(plugin, level, message)``."""

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _log_to_logging(plugin: str, level: str, message: str) -> None:
    logging.getLogger(f"rwq.plugin.{plugin}").log(_LOG_LEVELS[level], "%s", message)


def _notify_to_logging(plugin: str, message: str, level: str) -> None:
    log.info("notification from %s (%s): %s", plugin, level, message)


@dataclass(frozen=True)
class _Call:
    plugin: str
    binding: PluginBinding
    chain: tuple[str, ...]
    """The delegation chain ending with ``plugin``; empty for a direct call."""


Handler = Callable[[_Call, dict[str, Any]], Any]


@dataclass(eq=False)
class HostAPI:
    """The capability-gated host API; :meth:`call` is the runtimes' ``HostCall``.

    Args:
        grants: the grant store; it must audit to ``audit`` (every check is recorded).
        audit: the audit log; refusals made before a permission check are recorded here.
        admin: queue admin operations.
        producer: enqueues jobs.
        bus: the event bus (subscriptions, emitted events, alerts).
        storage: a plugin's store, by plugin name (built with its manifest's quota).
        bindings: the loaded version, bundle hash and queue scope of a plugin; None if it is
            not loaded (its calls are refused).
        dependencies: plugin name to the plugins its manifest declares as dependencies.
        call_plugin: runs a dependency's function (see :data:`DependencyCall`).
        read_only: refuse every call that changes a queue (``Settings.read_only``).
        on_notify: shows a notification; by default it is logged.
        on_log: receives plugin log lines; by default the ``rwq.plugin.<name>`` logger.
        health: one reading of host and Redis health (``HealthSampler.measure``).
        clock: monotonic seconds, for rate limits and timers.
    """

    grants: GrantStore
    audit: AuditLog
    admin: Admin
    producer: Producer
    bus: EventBus
    storage: Callable[[str], PluginStorage]
    bindings: Callable[[str], PluginBinding | None]
    dependencies: Mapping[str, Collection[str]] = field(default_factory=dict)
    call_plugin: DependencyCall | None = None
    read_only: bool = False
    on_notify: Notify = _notify_to_logging
    on_log: LogSink = _log_to_logging
    health: Callable[[], Mapping[str, Any]] | None = None
    clock: Callable[[], float] = time.monotonic
    max_subscriptions: int = MAX_SUBSCRIPTIONS
    timers: TimerTable = field(init=False)
    _buckets: _Buckets = field(init=False, repr=False)
    _handlers: dict[str, Handler] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.grants.audit is not self.audit:
            raise RwqError("the host API's grant store must audit to the host API's audit log")
        self.timers = TimerTable(clock=self.clock)
        self._buckets = _Buckets(self.clock)
        self._handlers = {name: getattr(self, f"_do_{name}") for name in HOST_FUNCTIONS}
        if self.health is None:
            # A sampler of its own (never started, on a bus of its own): only ``measure``.
            self.health = HealthSampler(self.admin.client, EventBus()).measure

    @property
    def rate_limited(self) -> Counter[tuple[str, str]]:
        """Calls refused by rate limits, per (plugin, function)."""
        return self._buckets.refused

    def release(self, plugin: str) -> None:
        """Drop what ``plugin`` holds through the API (timers, subscriptions, rate-limit
        state) when it unloads; its storage stays."""
        self.timers.clear_all(plugin)
        self.bus.unsubscribe_all(plugin)
        self._buckets.forget(plugin)

    # -- the entry ------------------------------------------------------------------------

    def call(
        self, plugin: str, function: str, args: Any, *, chain: Sequence[str] | None = None
    ) -> Any:
        """Run host function ``function`` for ``plugin`` (the identity the runtime bound).

        ``chain`` names a delegation (caller first, ``plugin`` last); by default it comes from
        the :func:`call_dependency` in progress in this context.

        Returns:
            The JSON-safe result.

        Raises:
            HostCallError: always this tree, with a ``code`` (see :class:`ErrorCode`).
        """
        spec = HOST_FUNCTIONS.get(function) if isinstance(function, str) else None
        delegated = tuple(_CHAIN.get() if chain is None else chain)
        if not delegated or delegated[-1] != plugin:
            delegated = ()
        try:
            if spec is None:
                name = str(function)[:64]
                raise self._refused(
                    UnknownFunction(f"no host function {name!r}", plugin=plugin),
                    plugin,
                    f"unknown:{name}",
                    delegated,
                )
            binding = self.bindings(plugin) if isinstance(plugin, str) else None
            if binding is None:
                raise self._refused(
                    HostPermissionDenied(str(plugin), spec.name, None, None, "not loaded"),
                    str(plugin),
                    self._operation(spec),
                    delegated,
                )
            try:
                values = validate_arguments(spec, args, binding.queues)
            except InvalidArgument as exc:
                exc.plugin = plugin
                raise self._refused(exc, plugin, self._operation(spec), delegated) from None
            if spec.writes and self.read_only:
                raise self._refused(
                    ReadOnly(
                        "the host is in read-only mode; nothing changed",
                        plugin=plugin,
                        function=spec.name,
                    ),
                    plugin,
                    self._operation(spec),
                    delegated,
                )
            c = _Call(plugin, binding, delegated)
            self._authorize(spec, c, values)
            if spec.rate is not None and not self._buckets.take(plugin, spec.name, spec.rate):
                raise RateLimited(
                    f"more than {spec.rate.count} calls in {spec.rate.per:g}s",
                    plugin=plugin,
                    function=spec.name,
                )
            return json_safe(self._handlers[spec.name](c, values))
        except HostCallError:
            raise
        except Exception as exc:
            raise self._translate(exc, plugin, spec) from None

    @staticmethod
    def _operation(spec: HostFunctionSpec) -> str:
        return f"{spec.permission or 'none'}:{spec.name}"

    def _refused(
        self, exc: HostCallError, plugin: str, operation: str, chain: tuple[str, ...]
    ) -> HostCallError:
        """Audit a refusal made before (or instead of) a grant-store check."""
        self.audit.record(plugin, operation, "", False, reason=str(exc)[:500], chain=chain)
        return exc

    def _translate(
        self, exc: Exception, plugin: str, spec: HostFunctionSpec | None
    ) -> HostCallError:
        function = spec.name if spec is not None else ""
        if isinstance(exc, UnknownQueue):
            return NotFound(str(exc), plugin=plugin, function=function, argument="queue")
        if isinstance(exc, ReadOnlyMode):
            return ReadOnly(str(exc), plugin=plugin, function=function)
        if isinstance(exc, StorageQuotaExceeded):
            return QuotaExceeded(str(exc), plugin=plugin, function=function)
        if isinstance(exc, StorageError):
            return InvalidArgument(str(exc), plugin=plugin, function=function,
                                   argument=exc.argument)  # fmt: skip
        if isinstance(exc, AdminError | JobError | InvalidQueueName):
            return InvalidArgument(str(exc), plugin=plugin, function=function)
        if isinstance(exc, BusError | EventTypeError):
            return InvalidArgument(str(exc), plugin=plugin, function=function)
        log.error("host call %s of plugin %s failed", function, plugin, exc_info=exc)
        return InternalError("internal error (see the host log)", plugin=plugin, function=function)

    # -- checks ---------------------------------------------------------------------------

    def _authorize(self, spec: HostFunctionSpec, c: _Call, values: Mapping[str, Any]) -> None:
        if spec.name == "call_dependency":
            self._authorize_dependency(c, values["plugin"], values["function"])
            return
        permission = spec.permission
        if permission is None:
            self.audit.record(
                c.plugin,
                self._operation(spec),
                "",
                True,
                reason="needs no permission",
                chain=c.chain,
            )
            return
        queue_scoped = CATALOG[permission].queue_scoped
        targets = spec.queues(values) if queue_scoped else (None,)
        for queue in targets:
            if queue is not None and ("*" in queue or "?" in queue):
                self._check_glob(spec, c, permission, queue)
            if c.chain:
                versions = self._versions(spec, c)
                decision = self.grants.check_chain(
                    c.chain, permission, queue=queue, operation=spec.name, versions=versions
                )
            else:
                decision = self.grants.check(
                    c.plugin,
                    permission,
                    queue=queue,
                    operation=spec.name,
                    version=c.binding.version,
                    bundle_hash=c.binding.bundle_hash,
                )
            if not decision.allowed:
                raise HostPermissionDenied(
                    c.plugin, spec.name, permission, queue, decision.reason, c.chain
                )

    def _versions(self, spec: HostFunctionSpec, c: _Call) -> dict[str, tuple[str, str]]:
        versions: dict[str, tuple[str, str]] = {}
        for member in c.chain:
            binding = c.binding if member == c.plugin else self.bindings(member)
            if binding is None:
                raise self._refused(
                    HostPermissionDenied(
                        c.plugin,
                        spec.name,
                        spec.permission,
                        None,
                        f"{member} is not loaded",
                        c.chain,
                    ),
                    c.plugin,
                    self._operation(spec),
                    c.chain,
                )
            versions[member] = (binding.version, binding.bundle_hash)
        return versions

    def _check_glob(self, spec: HostFunctionSpec, c: _Call, permission: str, glob: str) -> None:
        """A queue glob passes the grant store only as a name; it must also lie inside the
        granted globs, or ``t*`` would pass a grant of ``t?`` and reach every ``t...``."""
        now = time.time()
        for member in c.chain or (c.plugin,):
            binding = c.binding if member == c.plugin else self.bindings(member)
            if binding is None:
                continue  # refused by the chain check
            granted = [
                q
                for g in self.grants.grants_for(member)
                if g.binding == (binding.version, binding.bundle_hash)
                and permission in g.permissions
                and not g.expired(now)
                for q in g.scope.queues
            ]
            if granted and not any(_glob_within(glob, q) for q in granted):
                reason = f"queue glob {glob!r} reaches beyond the granted {', '.join(granted)}"
                self.audit.record(
                    member,
                    f"{permission}:{spec.name}",
                    glob,
                    False,
                    reason=reason,
                    chain=c.chain,
                )
                raise HostPermissionDenied(c.plugin, spec.name, permission, glob, reason, c.chain)

    def _authorize_dependency(self, c: _Call, target: str, function: str) -> None:
        chain = (*(c.chain or (c.plugin,)), target)
        operation = f"dependency:{function}"
        reason = ""
        if target not in self.dependencies.get(c.plugin, ()):
            reason = f"{c.plugin} does not declare {target} as a dependency"
        elif target in chain[:-1]:
            reason = f"dependency cycle: {' -> '.join(chain)}"
        elif len(chain) > MAX_CHAIN:
            reason = f"delegation chains are at most {MAX_CHAIN} plugins long"
        elif self.bindings(target) is None:
            reason = f"{target} is not loaded"
        self.audit.record(
            target, operation, "", not reason, reason=reason or "declared dependency", chain=chain
        )
        if reason:
            raise HostPermissionDenied(c.plugin, "call_dependency", None, target, reason, chain)

    # -- events ---------------------------------------------------------------------------

    def _do_subscribe(self, c: _Call, a: dict[str, Any]) -> Any:
        if len(self.bus.subscriptions(c.plugin)) >= self.max_subscriptions:
            raise QuotaExceeded(
                f"plugin {c.plugin!r} already has {self.max_subscriptions} subscriptions",
                plugin=c.plugin,
                function="subscribe",
            )
        sub_id = self.bus.subscribe(
            c.plugin,
            a["type"],
            queues=a["queues"],
            interval=a["interval"],
            rate_limit=a["rate_limit"],
        )
        return {"id": sub_id}

    def _do_unsubscribe(self, c: _Call, a: dict[str, Any]) -> Any:
        mine = {s.id for s in self.bus.subscriptions(c.plugin)}
        if a["id"] not in mine or not self.bus.unsubscribe(a["id"]):
            raise NotFound(
                f"plugin {c.plugin!r} has no subscription {a['id']!r}",
                plugin=c.plugin,
                function="unsubscribe",
                argument="id",
            )
        return None

    def _do_emit(self, c: _Call, a: dict[str, Any]) -> Any:
        event = local_event(
            plugin_event_type(c.plugin, a["type"]), a["data"], source=f"plugin:{c.plugin}"
        )
        self.bus.publish(event)
        return {"id": event.id, "type": event.type}

    def _do_send_alert(self, c: _Call, a: dict[str, Any]) -> Any:
        data = {"from": c.plugin, **a}
        if c.chain:
            data["chain"] = list(c.chain)
        event = local_event(ALERT_RAISED, data, source=f"plugin:{c.plugin}")
        self.bus.publish(event)
        return {"id": event.id}

    # -- queues ---------------------------------------------------------------------------

    def _do_enqueue_job(self, c: _Call, a: dict[str, Any]) -> Any:
        job = self.producer.enqueue(
            a["queue"], a["payload"], priority=a["priority"], tenant=a["tenant"], delay=a["delay"]
        )
        return job.to_dict()

    def _do_peek_job(self, c: _Call, a: dict[str, Any]) -> Any:
        return [job.to_dict() for job in self.admin.peek(a["queue"], a["n"], a["state"])]

    def _do_list_dead(self, c: _Call, a: dict[str, Any]) -> Any:
        page = self.admin.dlq_list(
            queue=a["queue"],
            tenant=a["tenant"],
            error=a["error"],
            older_than_s=a["older_than_s"],
            newer_than_s=a["newer_than_s"],
            offset=a["offset"],
            limit=a["limit"],
        )
        return {"total": page.total, "jobs": [job.to_dict() for job in page.jobs]}

    def _do_requeue_job(self, c: _Call, a: dict[str, Any]) -> Any:
        if not self.admin.requeue([a["job_id"]], queue=a["queue"]):
            raise NotFound(
                f"no dead job {a['job_id']!r} in queue {a['queue']!r}",
                plugin=c.plugin,
                function="requeue_job",
                argument="job_id",
            )
        return {"requeued": 1}

    def _do_requeue_jobs(self, c: _Call, a: dict[str, Any]) -> Any:
        if bool(a["ids"]) == a["all"]:
            raise InvalidArgument(
                "give either ids or all=true", plugin=c.plugin, function="requeue_jobs"
            )
        n = self.admin.requeue(a["ids"], all_jobs=a["all"], queue=a["queue"], to=a["to"])
        return {"requeued": n}

    def _do_purge_queue(self, c: _Call, a: dict[str, Any]) -> Any:
        queue, target = a["queue"], a["target"]
        if target != "pending":
            return {"purged": self.admin.purge(target, queue=queue)}
        # Not admin.purge(queue): a queue named "dead" or "all" would be read as that target
        # and purge every queue.
        broker = self.admin.broker
        if not broker.queue_exists(queue):
            raise UnknownQueue(queue, broker.queues())
        if broker.settings.read_only:
            raise ReadOnlyMode("purge")
        return {"purged": broker.purge(queue, "pending") + broker.purge(queue, "scheduled")}

    def _do_delete_dead(self, c: _Call, a: dict[str, Any]) -> Any:
        if not a["ids"]:
            raise InvalidArgument(
                "give the ids of the dead letters to delete",
                plugin=c.plugin,
                function="delete_dead",
                argument="ids",
            )
        return {"deleted": self.admin.delete_dead(a["queue"], a["ids"])}

    def _do_pause_queue(self, c: _Call, a: dict[str, Any]) -> Any:
        return {"changed": self.admin.pause(a["queue"])}

    def _do_resume_queue(self, c: _Call, a: dict[str, Any]) -> Any:
        return {"changed": self.admin.resume(a["queue"])}

    def _do_get_queue_stats(self, c: _Call, a: dict[str, Any]) -> Any:
        queue = a["queue"]
        return self.admin.stats([queue] if queue is not None else None).to_dict()

    def _do_get_system_stats(self, c: _Call, a: dict[str, Any]) -> Any:
        assert self.health is not None
        keys = self.admin.broker.keys
        client = self.admin.client
        return {
            "workers": int(client.hlen(keys.workers)),
            "queues": int(client.scard(keys.queues)),
            **self.health(),
            "taken_at": time.time(),
        }

    # -- the plugin's own things ----------------------------------------------------------

    def _do_log(self, c: _Call, a: dict[str, Any]) -> Any:
        self.on_log(c.plugin, a["level"], a["message"])
        return None

    def _do_show_notification(self, c: _Call, a: dict[str, Any]) -> Any:
        self.on_notify(c.plugin, a["message"], a["level"])
        return None

    def _do_set_timer(self, c: _Call, a: dict[str, Any]) -> Any:
        self.timers.set(c.plugin, a["id"], a["interval_ms"], a["repeat"])
        return None

    def _do_clear_timer(self, c: _Call, a: dict[str, Any]) -> Any:
        return {"cleared": self.timers.clear(c.plugin, a["id"])}

    def _do_storage_get(self, c: _Call, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).get(a["key"])

    def _do_storage_set(self, c: _Call, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).set(a["key"], a["value"]).to_dict()

    def _do_storage_delete(self, c: _Call, a: dict[str, Any]) -> Any:
        return {"deleted": self.storage(c.plugin).delete(a["key"])}

    def _do_storage_list(self, c: _Call, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).list(a["prefix"], a["limit"])

    def _do_storage_usage(self, c: _Call, a: dict[str, Any]) -> Any:
        return self.storage(c.plugin).usage().to_dict()

    def _do_call_dependency(self, c: _Call, a: dict[str, Any]) -> Any:
        target, function = a["plugin"], a["function"]
        if self.call_plugin is None:
            raise NotFound(
                "this host runs no plugin dependencies", plugin=c.plugin, function="call_dependency"
            )
        chain = (*(c.chain or (c.plugin,)), target)
        token = _CHAIN.set(chain)
        try:
            return self.call_plugin(chain, target, function, a["args"])
        except HostCallError:
            raise
        except RwqError as exc:
            raise InternalError(
                f"{target}.{function} failed: {exc}", plugin=c.plugin, function="call_dependency"
            ) from None
        finally:
            _CHAIN.reset(token)


def _glob_within(requested: str, granted: str) -> bool:
    """Whether every queue ``requested`` matches is matched by ``granted`` (conservative)."""
    if granted in ("*", requested):
        return True
    if not any(ch in requested for ch in "*?"):
        return fnmatch.fnmatchcase(requested, granted)
    prefix = granted[:-1]
    return (
        granted.endswith("*")
        and not any(ch in prefix for ch in "*?[")
        and requested.startswith(prefix)
    )


# -- docs -----------------------------------------------------------------------------------


def _limits(p: Param) -> str:
    parts = []
    if p.choices:
        parts.append("one of " + ", ".join(f"`{c}`" for c in p.choices))
    if p.minimum is not None and p.maximum is not None:
        parts.append(f"{p.minimum:g} to {p.maximum:g}")
    elif p.minimum is not None:
        parts.append(f">= {p.minimum:g}")
    elif p.maximum is not None:
        parts.append(f"<= {p.maximum:g}")
    if p.max_length is not None:
        unit = {"string": "characters", "string[]": "items"}.get(p.type, "bytes of JSON")
        parts.append(f"at most {p.max_length:,} {unit}")
    if p.pattern is not None:
        parts.append(f"`{p.pattern}`".replace("|", "\\|"))
    return "; ".join(parts)


def _default(p: Param) -> str:
    if p.required:
        return "required"
    if p.default is PLUGIN_QUEUES:
        return "the plugin's queue scope"
    value = list(p.default) if isinstance(p.default, tuple) else p.default
    return f"`{json.dumps(value)}`"


def render_markdown() -> str:
    """The text of ``docs/host-api.md``, generated from :data:`HOST_FUNCTIONS`."""
    lines = [
        "# Host API",
        "",
        "<!-- Generated from src/rwq/plugins/host_api.py by `python -m rwq.plugins.host_api`. -->",
        "",
        "The functions a plugin may call. Every call acts as the calling plugin (the runtime",
        "binds it; an argument can never change it), is validated against the table below",
        "(unknown arguments, wrong types and out-of-range values are refused), has its",
        "permission checked on every queue it touches for the loaded version and bundle hash",
        "(see [permissions.md](permissions.md)), and is recorded in the audit log. Results are",
        "JSON. A call that changes a queue is refused while the host runs read-only.",
        "",
        'A call that fails returns `{"error": {"code", "message", "permission"?,',
        '"argument"?}}`:',
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{code.value}` | {text} |" for code, text in _ERROR_DESCRIPTIONS.items()]
    lines += [
        "",
        "## Functions",
        "",
        "| function | permission | changes queues | rate limit | description |",
        "|---|---|---|---|---|",
    ]
    for spec in _SPECS:
        perm = f"`{spec.permission}`" if spec.permission else "-"
        writes = "destructive" if spec.destructive else "yes" if spec.writes else ""
        rate = f"{spec.rate.count} per {spec.rate.per:g}s" if spec.rate else ""
        lines.append(
            f"| [`{spec.name}`](#{spec.name}) | {perm} | {writes} | {rate} | {spec.description} |"
        )
    lines += [
        "",
        "`job` is the job object (`id`, `queue`, `payload`, `priority`, `tenant`, `attempts`,",
        "`max_retries`, `state`, times in epoch ms, `last_error`, ...); `stats` is one queue's",
        "statistics as in [plugin-events.md](plugin-events.md) (`queue.stats`).",
        "",
    ]
    for spec in _SPECS:
        params = ", ".join(p.name if p.required else f"{p.name}?" for p in spec.params)
        lines += [f"### {spec.name}", "", f"`{spec.name}({params})` → `{spec.returns}`", ""]
        lines.append(spec.description)
        lines.append("")
        facts = [f"- permission: `{spec.permission}`" if spec.permission else "- permission: none"]
        if spec.scope:
            facts.append(f"- checked on: {spec.scope}")
        if spec.writes:
            facts.append(
                "- refused in read-only mode" + ("; destructive" if spec.destructive else "")
            )
        if spec.rate:
            facts.append(f"- rate limit: {spec.rate.count} calls per {spec.rate.per:g}s")
        if spec.limits:
            facts.append(f"- limits: {spec.limits}")
        lines += [*facts, ""]
        if spec.params:
            lines += ["| argument | type | default | limits | meaning |", "|---|---|---|---|---|"]
            for p in spec.params:
                kind = p.type + (" or null" if p.nullable else "")
                lines.append(
                    f"| `{p.name}` | {kind} | {_default(p)} | {_limits(p)} | {p.description} |"
                )
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
