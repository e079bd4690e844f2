"""Job lifecycle events: their names and fields, in one place.

The Lua scripts append these to each queue's capped stream in the same atomic step as the
transition; worker heartbeats append ``worker.status`` to the system stream. The plugin event
bus consumes them. ``docs/events.md`` documents this module and a test keeps the two in step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Every event type the queue emits."""

    JOB_ENQUEUED = "job.enqueued"
    JOB_STARTED = "job.started"
    JOB_COMPLETED = "job.completed"
    JOB_TIMED_OUT = "job.timed_out"
    JOB_FAILED = "job.failed"
    JOB_RETRIED = "job.retried"
    JOB_REQUEUED = "job.requeued"
    JOB_DEAD_LETTERED = "job.dead_lettered"
    QUEUE_PURGED = "queue.purged"
    QUEUE_PAUSED = "queue.paused"
    QUEUE_RESUMED = "queue.resumed"
    SCHEDULE_FIRED = "schedule.fired"
    WORKER_STATUS = "worker.status"


COMMON_FIELDS = ("type",)
"""Fields stored on every stream entry. Readers add ``ts`` (epoch ms, from the entry id, which
the server assigns) and ``queue`` (from the stream the entry is in; empty for workers)."""

FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.JOB_ENQUEUED: ("job_id", "tenant", "priority", "run_at", "labels"),
    EventType.JOB_STARTED: ("job_id", "tenant", "attempt", "worker", "wait_ms", "labels"),
    EventType.JOB_COMPLETED: ("job_id", "tenant", "attempt", "worker", "duration_ms", "labels"),
    EventType.JOB_TIMED_OUT: (
        "job_id",
        "tenant",
        "attempt",
        "worker",
        "timeout_ms",
        "handler",
        "labels",
    ),
    EventType.JOB_FAILED: (
        "job_id",
        "tenant",
        "attempt",
        "worker",
        "duration_ms",
        "error",
        "labels",
    ),
    EventType.JOB_RETRIED: ("job_id", "tenant", "attempt", "run_at", "labels"),
    EventType.JOB_REQUEUED: ("job_id", "tenant", "reason", "from_queue", "labels"),
    EventType.JOB_DEAD_LETTERED: ("job_id", "tenant", "attempt", "error", "labels"),
    EventType.QUEUE_PURGED: ("target", "count"),
    EventType.QUEUE_PAUSED: (),
    EventType.QUEUE_RESUMED: (),
    EventType.SCHEDULE_FIRED: ("schedule", "job_id", "tick", "late_ms", "missed"),
    EventType.WORKER_STATUS: ("worker", "state", "host", "pid", "queues", "current", "processed"),
}
"""The fields each event type carries besides :data:`COMMON_FIELDS`. Optional fields may be
absent or empty (``tenant``, ``run_at``, ``reason``, ``from_queue``); ``labels`` is present
only when the job has labels (see :data:`LABELS`)."""

LABELS = "labels"
"""The job events' field of payload labels: on the wire compact ASCII JSON of an object of up
to 4 scalar payload fields (setting ``event_labels``); :meth:`Event.from_entry` decodes it."""

DESCRIPTIONS: dict[EventType, str] = {
    EventType.JOB_ENQUEUED: "A job was added; `run_at` is set when it is delayed.",
    EventType.JOB_STARTED: "A worker took the job; `wait_ms` is how long it waited.",
    EventType.JOB_COMPLETED: "The handler returned; the job is in the completed history.",
    EventType.JOB_TIMED_OUT: "The handler ran past its timeout (`timeout_ms`): `handler` is "
    "`killed` (process isolation: its process was stopped), `abandoned` (thread mode: its "
    "thread runs on and its result will be discarded) or `cancelled` (an async handler: its "
    "task was cancelled). A `job.failed` follows.",
    EventType.JOB_FAILED: "The handler raised, timed out or its process died; a `job.retried` "
    "or `job.dead_lettered` follows.",
    EventType.JOB_RETRIED: "The job waits in the scheduled set until `run_at`.",
    EventType.JOB_REQUEUED: "A job went back to pending: `reason` is `dead_letter` (an operator "
    "requeue), `worker_lost` (the reaper) or `shutdown`; `from_queue` names the queue it came "
    "from when that differs.",
    EventType.JOB_DEAD_LETTERED: "Retries are exhausted (or the failure was permanent).",
    EventType.QUEUE_PURGED: "An operator removed `count` jobs from `target` (`pending`, "
    "`scheduled`, `dead` or `completed`).",
    EventType.QUEUE_PAUSED: "Workers stop taking jobs from the queue; enqueue still works.",
    EventType.QUEUE_RESUMED: "Workers take jobs from the queue again.",
    EventType.SCHEDULE_FIRED: "A periodic job's tick (`tick`, epoch ms) enqueued `job_id` "
    "(`<schedule>:<tick>`), once however many schedulers run, `late_ms` after the tick; "
    "`missed` counts earlier ticks it stands for (no scheduler ran then). Follows its "
    "`job.enqueued`.",
    EventType.WORKER_STATUS: "A worker heartbeat: `state` is `starting`, `running`, "
    "`stopping`, `stopped` or `dead`; `queues` is comma-separated.",
}

_NUMERIC = {"priority", "attempt", "wait_ms", "duration_ms", "run_at", "count", "pid",
            "current", "processed", "timeout_ms", "tick", "late_ms", "missed"}  # fmt: skip


@dataclass(frozen=True)
class Event:
    """The envelope of every event: read back from a stream (:meth:`from_entry`), or made by a
    host process (samplers, admin operations, plugin lifecycle, plugins); shared by every
    reader, so treat as read-only."""

    type: str
    ts: float
    """Epoch milliseconds: the stream entry's time (server clock) or the local publish time."""
    source: str
    """Where it comes from: ``queue`` (a queue's stream), ``worker`` (the system stream),
    ``sampler``, ``admin``, ``host`` or ``plugin:<name>`` (see ``docs/plugin-events.md``)."""
    queue: str = ""
    """The queue the event is about; ``""`` if none."""
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    """The stream entry id (``<ms>-<seq>``, unique per queue) or ``local:<n>`` for local events."""

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str], queue: str = "") -> Event:
        """Build an event from a stream entry of ``queue``'s stream (``""``: system stream)."""
        data: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "type":
                continue
            if key == LABELS:
                labels = _decode_labels(value)
                if labels is not None:
                    data[key] = labels
            elif key in _NUMERIC and value != "":
                data[key] = _number(value)
            else:
                data[key] = value
        kind = fields.get("type", "")
        return cls(
            type=kind,
            ts=entry_ms(entry_id),
            source="worker" if kind == EventType.WORKER_STATUS else "queue",
            queue=queue,
            data=data,
            id=entry_id,
        )

    def to_dict(self) -> EventPayload:
        """What a plugin receives: a JSON-safe dict, made once per event and shared by every
        subscriber (so read-only), whose JSON a runtime encodes once for all of them."""
        payload: EventPayload | None = self.__dict__.get("_payload")
        if payload is None:  # two threads may both make it: equal values, one is kept
            payload = EventPayload(
                id=self.id,
                type=self.type,
                ts=self.ts,
                source=self.source,
                queue=self.queue,
                data=json_safe(self.data),
            )
            object.__setattr__(self, "_payload", payload)
        return payload

    def __getstate__(self) -> dict[str, Any]:  # a pickle carries the fields, not the payload
        state = dict(self.__dict__)
        state.pop("_payload", None)
        return state


class EventPayload(dict[str, Any]):
    """One event as plugins receive it (:meth:`Event.to_dict`): shared by every plugin the
    event reaches, so it refuses changes (a copy, ``dict(payload)``, may be changed; the
    nested ``data`` is shared too and must be left alone). ``encoded`` is its guest JSON once a
    runtime has encoded it (:func:`rwq.plugins.runtimes.base.to_guest_json`): a batch for
    one more plugin costs a join of those bytes, not an encoding."""

    __slots__ = ("encoded",)

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.encoded: bytes | None = None

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("an event handed to plugins is shared and read-only: copy it first")

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = __ior__ = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles are plain dicts
        return (dict, (dict(self),))


MAX_DEPTH = 64
"""Event data nests at most this deep; deeper parts are replaced by a note."""


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` made JSON-safe: string keys, lists for sequences, no NaN/inf, nothing nested
    deeper than :data:`MAX_DEPTH`, else ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return f"(nested deeper than {MAX_DEPTH} levels)"
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)


def entry_ms(entry_id: str) -> float:
    """The epoch milliseconds of a stream entry id (``<ms>-<seq>``); 0 for an id that is not
    one (never NaN or infinity, which JSON cannot carry)."""
    ms = entry_id.partition("-")[0]
    return float(ms) if ms.isascii() and ms.isdigit() and len(ms) <= 15 else 0.0


def _number(text: str) -> int | float | str:
    """A numeric field's value; its text when no rwq script wrote it (not a finite number that
    JSON can carry)."""
    try:
        value = float(text) if "." in text else int(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value if abs(value) < 2**63 else text


def _decode_labels(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None  # not written by rwq's scripts; left out rather than passed on as text
    return value if isinstance(value, dict) and value else None


def render_markdown() -> str:
    """The text of ``docs/events.md``, generated from this module (a test keeps them equal)."""
    lines = [
        "# Queue events",
        "",
        "<!-- Generated from src/rwq/queue/events.py by `make docs`. -->",
        "",
        "Every job transition appends an event to its queue's capped Redis Stream in the same",
        "atomic step (the Lua script that makes the transition), so every UI and plugin host",
        "sees what every worker on every machine does. Worker heartbeats go to the system",
        "stream. All values are strings on the wire; readers parse the numeric ones.",
        "",
        "| stream | key |",
        "|---|---|",
        "| one per queue | `<prefix>:{<prefix>:q:<queue>}:events` |",
        "| system (workers) | `<prefix>:{<prefix>:registry}:events` |",
        "",
        "Each stream is capped near `events_maxlen` entries (default 10,000; `XADD MAXLEN ~`).",
        "Every entry has a `type` field. A reader adds `ts` (epoch ms, from the entry id the",
        "server assigns) and `queue` (from the stream it read; empty for the system stream).",
        "",
        "| type | fields | meaning |",
        "|---|---|---|",
    ]
    for event_type in EventType:
        fields = ", ".join(f"`{f}`" for f in FIELDS[event_type]) or "-"
        lines.append(f"| `{event_type.value}` | {fields} | {DESCRIPTIONS[event_type]} |")
    lines += [
        "",
        "Numeric fields: " + ", ".join(f"`{f}`" for f in sorted(_NUMERIC)) + ".",
        "Times (`run_at`) are epoch milliseconds on the Redis server's clock; durations",
        "(`wait_ms`, `duration_ms`) are milliseconds with microsecond precision; `timeout_ms`",
        "is whole milliseconds. A schedule's `tick` is the epoch ms it was due.",
        "",
        "## Labels",
        "",
        "Every `job.*` event carries `labels` when the job has any: fields of its payload,",
        "copied at enqueue so that events can be grouped by them without reading the job.",
        "The setting `event_labels` (`rwq.yaml` list or `RWQ_EVENT_LABELS`, comma-separated;",
        "default `kind,type`; empty disables) names up to 4 top-level fields. Of a payload",
        "that is an object, each named field whose value is a string, number or boolean is",
        "copied, strings cut to 64 characters; nested objects, lists and nulls are left out.",
        "No such field, no `labels`. On the wire the value is compact ASCII JSON",
        '(`{"kind":"search.index"}`); readers (`Event.from_entry`, the plugin event feed)',
        "decode it to an object. The job hash keeps it in its `labels` field.",
        "",
    ]
    return "\n".join(lines)
