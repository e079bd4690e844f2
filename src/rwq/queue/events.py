"""Job lifecycle events: their names and fields, in one place.

The Lua scripts append these to each queue's capped stream in the same atomic step as the
transition; worker heartbeats append ``worker.status`` to the system stream. The plugin event
bus consumes them. ``docs/events.md`` documents this module and a test keeps the two in step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Every event type the queue emits."""

    JOB_ENQUEUED = "job.enqueued"
    JOB_STARTED = "job.started"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_RETRIED = "job.retried"
    JOB_REQUEUED = "job.requeued"
    JOB_DEAD_LETTERED = "job.dead_lettered"
    QUEUE_PURGED = "queue.purged"
    QUEUE_PAUSED = "queue.paused"
    QUEUE_RESUMED = "queue.resumed"
    WORKER_STATUS = "worker.status"


COMMON_FIELDS = ("type",)
"""Fields stored on every stream entry. Readers add ``ts`` (epoch ms, from the entry id, which
the server assigns) and ``queue`` (from the stream the entry is in; empty for workers)."""

FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.JOB_ENQUEUED: ("job_id", "tenant", "priority", "run_at", "labels"),
    EventType.JOB_STARTED: ("job_id", "tenant", "attempt", "worker", "wait_ms", "labels"),
    EventType.JOB_COMPLETED: ("job_id", "tenant", "attempt", "worker", "duration_ms", "labels"),
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
    EventType.JOB_FAILED: "The handler raised; a `job.retried` or `job.dead_lettered` follows.",
    EventType.JOB_RETRIED: "The job waits in the scheduled set until `run_at`.",
    EventType.JOB_REQUEUED: "A job went back to pending: `reason` is `dead_letter` (an operator "
    "requeue), `worker_lost` (the reaper) or `shutdown`; `from_queue` names the queue it came "
    "from when that differs.",
    EventType.JOB_DEAD_LETTERED: "Retries are exhausted (or the failure was permanent).",
    EventType.QUEUE_PURGED: "An operator removed `count` jobs from `target` (`pending`, "
    "`scheduled`, `dead` or `completed`).",
    EventType.QUEUE_PAUSED: "Workers stop taking jobs from the queue; enqueue still works.",
    EventType.QUEUE_RESUMED: "Workers take jobs from the queue again.",
    EventType.WORKER_STATUS: "A worker heartbeat: `state` is `starting`, `running`, "
    "`stopping`, `stopped` or `dead`; `queues` is comma-separated.",
}

_NUMERIC = {"priority", "attempt", "wait_ms", "duration_ms", "run_at", "count", "pid",
            "current", "processed"}  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One event as read back from a stream."""

    type: str
    ts: float
    queue: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    """The stream entry id (``<ms>-<seq>``), unique per stream."""

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
        return cls(
            type=fields.get("type", ""),
            ts=entry_ms(entry_id),
            queue=queue,
            data=data,
            id=entry_id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "ts": self.ts, "queue": self.queue, **self.data}


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
        "(`wait_ms`, `duration_ms`) are milliseconds with microsecond precision.",
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
