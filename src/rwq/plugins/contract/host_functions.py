"""Every function a plugin may call, declared as data: its permission, its parameters with
their types and limits, its result and whether it changes queues. The same declarations
validate each call (:mod:`rwq.plugins.contract.arguments`) and generate ``docs/host-api.md``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rwq.plugins.contract.events import ALERT_RAISED
from rwq.queue.admin import PEEK_TARGETS
from rwq.queue.job import MAX_PRIORITY, MIN_PRIORITY

__all__ = [
    "HOST_FUNCTIONS",
    "MAX_CHAIN",
    "MAX_SUBSCRIPTIONS",
    "MAX_TIMERS",
    "MIN_TIMER_MS",
    "PLUGIN_QUEUES",
    "REQUIRED",
    "SPECS",
    "HostFunctionSpec",
    "Param",
    "QueueTargets",
    "Rate",
]

MAX_TIMERS = 16
MIN_TIMER_MS = 50
MAX_SUBSCRIPTIONS = 64
MAX_CHAIN = 4
"""Longest delegation chain (caller, its dependency, that one's dependency, ...)."""


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

SPECS: tuple[HostFunctionSpec, ...] = (
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

HOST_FUNCTIONS: dict[str, HostFunctionSpec] = {spec.name: spec for spec in SPECS}
"""Every host function, by name."""
