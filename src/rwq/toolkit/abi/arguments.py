"""The arguments the conformance run hands a plugin's hooks: batches of events shaped as the
bus delivers them (every type, none, the most, the largest, types no catalog has), timers,
input events and panel sizes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rwq.plugins.contract.events import CATALOG, EventPayload
from rwq.plugins.contract.ui import TYPES, button_input, key_input, select_input
from rwq.plugins.eventbus.bus import DEFAULT_INBOX
from rwq.plugins.runtimes.base import to_guest_json
from rwq.queue.broker import MAX_ERROR_CHARS
from rwq.queue.events import Event, EventType

__all__ = [
    "MAX_BATCH",
    "RENDER_SIZES",
    "UNKNOWN_TIMER",
    "batch_bytes",
    "every_type",
    "input_events",
    "job_events",
    "large_batch",
    "oversized_batch",
    "render_argument",
    "timer_argument",
    "unknown_types",
]

MAX_BATCH = DEFAULT_INBOX
"""The most events one ``on_event`` call gets: a plugin's inbox holds at most this many and the
dispatcher hands over at most this many at once."""

RENDER_SIZES = ((80, 24, False), (1, 1, False), (200, 60, True))
"""Panel bodies ``render`` is asked for (columns, rows, focused): a grid cell, the smallest
possible, a large focused panel."""

UNKNOWN_TIMER = "rwq-abi-check-unknown"
"""A timer id no plugin set (a timer of the version it replaced, say)."""

_T0 = 1_700_000_000_000.0
_COUNTS = {"priority", "attempt", "count", "pid", "current", "processed", "workers", "pending",
           "processing", "scheduled", "dead", "run_at"}  # fmt: skip
_AMOUNTS = ("_total", "_ms", "_1m", "_s", "_bytes", "_percent", "_memory")


def _value(field: str, n: int) -> Any:
    if field in _COUNTS or field.endswith(_AMOUNTS):
        return n
    if field == "paused":
        return False
    if field == "labels":
        return {"customer": "acme", "region": "eu"}
    if field == "error":
        return "ValueError: boom"
    return f"{field}-{n}"


def _event(kind: str, n: int, *, source: str = "", data: dict[str, Any] | None = None) -> Event:
    spec = CATALOG.get(kind)
    fields = spec.fields if spec is not None else ()
    if not source:
        source = spec.source.replace("<name>", "other") if spec is not None else "queue"
    scoped = spec is None or spec.queue_scoped
    return Event(
        type=kind,
        ts=_T0 + n * 1000,
        source=source,
        queue=f"abi-check.q{n % 3}" if scoped else "",
        data=data if data is not None else {f: _value(f, n) for f in fields},
        id=f"{int(_T0) + n}-0",
    )


def every_type() -> list[EventPayload]:
    """One event of every type of the catalog, and one a plugin emitted, oldest first."""
    kinds = [*CATALOG, "plugin.other.report_ready"]
    return [_event(kind, n, source="plugin:other" if kind.startswith("plugin.other") else "")
            .to_dict() for n, kind in enumerate(kinds)]  # fmt: skip


def job_events(count: int, *, error: str = "ValueError: boom") -> list[EventPayload]:
    """``count`` job events cycling through completed, failed and dead-lettered."""
    kinds = (EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_DEAD_LETTERED)
    events = []
    for n in range(count):
        kind = kinds[n % len(kinds)].value
        data = {f: _value(f, n) for f in CATALOG[kind].fields}
        if "error" in data:
            data["error"] = error
        events.append(_event(kind, n, data=data).to_dict())
    return events


def batch_bytes(events: list[EventPayload]) -> int:
    """Bytes of the JSON the plugin receives for ``events``."""
    return len(to_guest_json(events))


def large_batch(max_bytes: int) -> list[EventPayload]:
    """:data:`MAX_BATCH` job events with errors as long as fit in ``max_bytes`` of JSON (at most
    the error a job keeps, :data:`MAX_ERROR_CHARS`): the largest batch of job events, or as
    large as ``max_bytes`` allows (fewer events when even short ones do not fit)."""
    base = batch_bytes(job_events(MAX_BATCH, error=""))
    if base > max_bytes:
        return job_events(max(1, MAX_BATCH * max_bytes // base), error="")
    per_event = (max_bytes - base) // MAX_BATCH
    length = min(MAX_ERROR_CHARS, per_event * 3 // 2)  # a third of the events carry an error
    return job_events(MAX_BATCH, error="x" * length)


def oversized_batch(min_bytes: int) -> list[EventPayload]:
    """A batch whose JSON is more than ``min_bytes`` (more than the plugin's memory can hold)."""
    return [_event(EventType.JOB_FAILED.value, 0, data={"error": "x" * min_bytes}).to_dict()]


def unknown_types() -> list[EventPayload]:
    """Events a plugin must skip: types no catalog of this host has (a newer host's), fields it
    does not know, an empty queue and data."""
    return [
        _event("job.teleported", 0, data={"job_id": "j0", "to": "mars"}).to_dict(),
        _event("queue.renamed", 1, data={}).to_dict(),
        _event("plugin.other.unheard_of", 2, source="plugin:other",
               data={"nested": {"deep": [1, 2, {"x": None}]}}).to_dict(),
        _event(EventType.JOB_COMPLETED.value, 3,
               data={"job_id": "j3", "future_field": [1.5, True, None]}).to_dict(),
    ]  # fmt: skip


def render_argument(width: int, height: int, focused: bool) -> dict[str, Any]:
    return {"width": width, "height": height, "focused": focused}


def timer_argument(timer: str, n: int = 0) -> dict[str, Any]:
    return {"id": timer, "ts": _T0 + n * 1000}


def input_events(elements: list[Any]) -> list[dict[str, Any]]:
    """The input events a panel of ``elements`` can get: a key, each of its buttons pressed,
    the first row or item of each list and table with an id chosen, and a kind no host sends
    yet."""
    events: list[dict[str, Any]] = [key_input("r")]
    for element in _walk(elements):
        element_id, spec = element.get("id"), TYPES.get(str(element.get("type")))
        if not isinstance(element_id, str) or spec is None:
            continue
        if spec.interactive == "button":
            events.append(button_input(element_id))
        elif spec.interactive == "select":
            rows = element.get("rows") if spec.name == "table" else element.get("items")
            if isinstance(rows, list) and rows:
                first = rows[0]
                value = first[0] if isinstance(first, list) and first else first
                events.append(select_input(element_id, 0, str(value)))
    events.append({"kind": "rwq-abi-check", "id": "unknown"})
    return events


def _walk(elements: list[Any]) -> Iterator[dict[str, Any]]:
    for element in elements:
        if isinstance(element, dict):
            yield element
            children = element.get("children")
            if isinstance(children, list):
                yield from _walk(children)
