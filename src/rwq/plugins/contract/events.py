"""The plugin-side event contract: the envelope plugins receive and every type they may
subscribe to, in one place.

The event bus (:mod:`rwq.plugins.eventbus.bus`) carries :class:`rwq.queue.events.Event`, the one
envelope of every event; runtimes hand a plugin ``Event.to_dict()``. ``docs/plugin-events.md``
is generated from this module (written by ``make docs``) and a test keeps the two equal.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from rwq.errors import RwqError
from rwq.queue.admin import QueueStats
from rwq.queue.events import DESCRIPTIONS as QUEUE_DESCRIPTIONS
from rwq.queue.events import FIELDS as QUEUE_FIELDS
from rwq.queue.events import Event, EventPayload, EventType, json_safe

__all__ = [
    "ALERT_RAISED",
    "CATALOG",
    "PLUGIN_FAULTED",
    "PLUGIN_LOADED",
    "PLUGIN_RELOADED",
    "PLUGIN_UNLOADED",
    "QUEUE_STATS",
    "SAMPLED",
    "SOURCES",
    "SYSTEM_HEALTH",
    "Event",
    "EventPayload",
    "EventSpec",
    "EventTypeError",
    "check_pattern",
    "glob_matcher",
    "is_glob",
    "is_known_type",
    "json_safe",
    "local_event",
    "plugin_event_type",
    "render_markdown",
]

QUEUE_STATS = "queue.stats"
SYSTEM_HEALTH = "system.health"
PLUGIN_LOADED = "plugin.loaded"
PLUGIN_UNLOADED = "plugin.unloaded"
PLUGIN_FAULTED = "plugin.faulted"
PLUGIN_RELOADED = "plugin.reloaded"
ALERT_RAISED = "alert.raised"

SAMPLED = frozenset({QUEUE_STATS, SYSTEM_HEALTH})
"""Types a sampler publishes on a schedule. The bus coalesces them: a plugin's inbox holds only
the latest one per (type, queue), and a subscription's ``interval`` sets how often it wants one.
"""

SOURCES = ("queue", "worker", "sampler", "admin", "host", "plugin:<name>")
"""Where an event comes from (:attr:`Event.source`)."""

_SOURCE_DESCRIPTIONS = {
    "queue": "a queue's event stream: a job transition or an admin operation on the queue, "
    "made by any process on any machine",
    "worker": "the system event stream: a worker heartbeat or the reaper declaring a worker dead",
    "sampler": "a sampler of this host process (`queue.stats`, `system.health`)",
    "admin": "an admin operation made by this host process",
    "host": "the plugin host itself (plugin lifecycle)",
    "plugin:<name>": "an event the plugin `<name>` emitted",
}

_PLUGIN_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_EMITTED_NAME_RE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"
_PLUGIN_NAME = re.compile(rf"^{_PLUGIN_NAME_RE}\Z")
_EMITTED_NAME = re.compile(rf"^{_EMITTED_NAME_RE}\Z")
_PLUGIN_EVENT = re.compile(rf"^plugin\.{_PLUGIN_NAME_RE}\.{_EMITTED_NAME_RE}\Z")


class EventTypeError(RwqError):
    """An event type or subscription pattern is malformed or can never match."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"event type {value!r}: {reason}")


@dataclass(frozen=True)
class EventSpec:
    """One event type plugins may subscribe to."""

    type: str
    source: str
    fields: tuple[str, ...]
    description: str
    queue_scoped: bool
    """Whether the envelope names a queue (else ``queue`` is ``""``)."""


_STATS_FIELDS = tuple(f.name for f in fields(QueueStats) if f.name != "queue")
_HEALTH_FIELDS = ("rss_bytes", "cpu_percent", "redis_latency_ms", "redis_used_memory")

CATALOG: dict[str, EventSpec] = {
    **{
        t.value: EventSpec(
            t.value,
            "worker" if t is EventType.WORKER_STATUS else "queue",
            QUEUE_FIELDS[t],
            QUEUE_DESCRIPTIONS[t],
            queue_scoped=t is not EventType.WORKER_STATUS,
        )
        for t in EventType
    },
    QUEUE_STATS: EventSpec(
        QUEUE_STATS, "sampler", _STATS_FIELDS,
        "A queue's statistics (as `rwq admin stats`), sampled at the smallest `interval` any "
        "subscription asks for (default 5 s, at least 0.2 s); coalesced.", queue_scoped=True,
    ),
    SYSTEM_HEALTH: EventSpec(
        SYSTEM_HEALTH, "sampler", _HEALTH_FIELDS,
        "The host process's resident memory and CPU use (percent of one core since the last "
        "sample), the Redis PING round trip and Redis `used_memory` (summed over a cluster's "
        "primaries; null when Redis is unreachable); coalesced.", queue_scoped=False,
    ),
    PLUGIN_LOADED: EventSpec(
        PLUGIN_LOADED, "host", ("plugin", "version", "runtime"),
        "A plugin was loaded and activated.", queue_scoped=False,
    ),
    PLUGIN_UNLOADED: EventSpec(
        PLUGIN_UNLOADED, "host", ("plugin", "version", "reason"),
        "A plugin was deactivated and unloaded (`reason`: `disabled`, `removed`, `shutdown`).",
        queue_scoped=False,
    ),
    PLUGIN_FAULTED: EventSpec(
        PLUGIN_FAULTED, "host", ("plugin", "version", "error"),
        "A plugin raised, trapped or exceeded a budget and was stopped.", queue_scoped=False,
    ),
    PLUGIN_RELOADED: EventSpec(
        PLUGIN_RELOADED, "host", ("plugin", "version", "previous_version"),
        "A plugin was hot-reloaded (its new code replaced the old).", queue_scoped=False,
    ),
    ALERT_RAISED: EventSpec(
        ALERT_RAISED, "plugin:<name>",
        ("from", "severity", "title", "message", "key", "repeat", "chain"),
        "A plugin with `admin.alerts.send` raised an alert (`send_alert`); `from` names it, "
        "`repeat` says it is the same incident still going on, `chain` the delegation chain "
        "when it came through a dependency call.",
        queue_scoped=False,
    ),
}  # fmt: skip
"""Every fixed event type. Plugins may also emit ``plugin.<name>.<type>`` (see
:func:`plugin_event_type`)."""


_local_ids = itertools.count(1)


def local_event(
    type: str,
    data: Mapping[str, Any] | None = None,
    *,
    source: str = "host",
    queue: str = "",
    ts: float | None = None,
) -> Event:
    """An event made in this process (sampler, admin operation, lifecycle, plugin-emitted)."""
    return Event(
        type=type,
        ts=time.time() * 1000 if ts is None else ts,
        source=source,
        queue=queue,
        data=dict(data or {}),
        id=f"local:{next(_local_ids)}",
    )


def plugin_event_type(plugin: str, name: str) -> str:
    """The type of an event ``plugin`` emits: ``plugin.<plugin>.<name>``."""
    if not _PLUGIN_NAME.match(plugin):
        raise EventTypeError(f"plugin.{plugin}.{name}", f"bad plugin name {plugin!r}")
    if not _EMITTED_NAME.match(name):
        raise EventTypeError(
            f"plugin.{plugin}.{name}",
            "an emitted event name is 1-64 letters, digits, '_', '.' or '-'",
        )
    return f"plugin.{plugin}.{name}"


def is_known_type(event_type: str) -> bool:
    """Whether ``event_type`` is in :data:`CATALOG` or a plugin-emitted type."""
    return event_type in CATALOG or _PLUGIN_EVENT.match(event_type) is not None


@lru_cache(maxsize=4096)
def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A matcher for a type pattern or queue glob: ``*`` matches any run of characters
    (dots included), ``?`` one character; everything else is literal. Compiled once."""
    if "*" not in pattern and "?" not in pattern:
        return pattern.__eq__
    if pattern == "*":
        return _always
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    fullmatch = re.compile(regex, re.DOTALL).fullmatch
    return lambda value: fullmatch(value) is not None


def _always(_: str) -> bool:
    return True


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def check_pattern(pattern: str) -> str:
    """Return ``pattern`` if some event type could match it, else raise
    :class:`EventTypeError` (a typo such as ``jobs.*`` would silently receive nothing)."""
    if not pattern or any(c.isspace() for c in pattern):
        raise EventTypeError(pattern, "a pattern is a non-empty string without spaces")
    match = glob_matcher(pattern)
    if any(match(t) for t in CATALOG):
        return pattern
    if pattern.startswith("plugin.") and "." in pattern[len("plugin.") :]:
        return pattern
    if match("plugin.p.e"):
        return pattern
    known = ", ".join(sorted(CATALOG))
    raise EventTypeError(pattern, f"matches no event type (known: {known}, plugin.<name>.<type>)")


def render_markdown() -> str:
    """The text of ``docs/plugin-events.md``, generated from this module."""
    lines = [
        "# Plugin events",
        "",
        "<!-- Generated from src/rwq/plugins/contract/events.py by",
        "`make docs`. -->",
        "",
        "Plugins subscribe to events by type pattern and queue glob (in the manifest's",
        "`events:` list or through the host API) and receive them in batches: the bus keeps a",
        "bounded inbox per plugin and the dispatcher hands the plugin its whole inbox at once.",
        "Every host process (each TUI, each plugin host) follows the queue event streams itself,",
        "so each sees every event from every worker on every machine.",
        "",
        "## The envelope",
        "",
        "| field | type | meaning |",
        "|---|---|---|",
        "| `id` | string | stream entry id (`<ms>-<seq>`, unique per queue) or `local:<n>` |",
        "| `type` | string | one of the types below |",
        "| `ts` | number | epoch milliseconds (the Redis server's clock for stream events) |",
        "| `source` | string | where it came from (below) |",
        '| `queue` | string | the queue it is about; `""` if none |',
        "| `data` | object | the type's fields (below); optional ones may be absent or empty |",
        "",
        "| source | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{s}` | {_SOURCE_DESCRIPTIONS[s]} |" for s in SOURCES]
    lines += [
        "",
        "## Types",
        "",
        "| type | source | queue | data fields | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in CATALOG.values():
        data = ", ".join(f"`{f}`" for f in spec.fields) or "-"
        queue = "yes" if spec.queue_scoped else ""
        lines.append(f"| `{spec.type}` | {spec.source} | {queue} | {data} | {spec.description} |")
    lines += [
        "| `plugin.<name>.<type>` | plugin:&lt;name&gt; | optional | the emitter's | An event "
        "the plugin `<name>` emitted; `<type>` is 1-64 letters, digits, `_`, `.` or `-`. |",
        "",
        "Queue events are documented with their wire format in [events.md](events.md).",
        "`job.*` events carry `labels` when the job has any: an object of up to 4 scalar",
        'payload fields (`{"kind": "search.index"}`), named by the setting `event_labels`',
        "(default `kind,type`; see [events.md](events.md#labels)).",
        "",
        "## Subscriptions",
        "",
        "- **type pattern**: `*` matches any run of characters (dots included), `?` one",
        "  character: `job.*`, `plugin.alert-manager.*`, `*`. A pattern that matches no type",
        "  is refused.",
        '- **queues** (default `["*"]`): globs of the same form. They filter events that',
        "  name a queue; events without one (`worker.status`, `system.health`, `plugin.*`)",
        "  reach every subscription whose type pattern matches.",
        "- **interval** (seconds): how often the plugin wants sampled types",
        f"  ({', '.join(f'`{t}`' for t in sorted(SAMPLED))}); default 5 s, at least 0.2 s.",
        "  The sampler runs at the smallest interval any subscription asks for, and only while",
        "  someone subscribes. Other types are not affected.",
        "- **rate_limit** (events/s): a token bucket (burst: one second's worth); events over",
        "  the limit are dropped and counted as `throttled`.",
        "- **priority**: when several plugins have work, plugins with higher-priority",
        "  subscriptions are served first.",
        "",
        "An event reaches a plugin once even if several of its subscriptions match.",
        "",
        "## Delivery",
        "",
        "Each plugin has a bounded inbox (1000 events by default); the host never waits for a",
        "slow plugin. When the inbox is full its oldest event (sampled ones last) is dropped",
        "and counted in `dropped`. Sampled types coalesce: a new `queue.stats` for a queue",
        "replaces the one still waiting (counted in `coalesced`). Events of a batch are in",
        "publish order; a plugin never receives two batches at once.",
        "",
    ]
    return "\n".join(lines)
