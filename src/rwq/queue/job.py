"""The job: what a producer enqueues and a worker runs, and how it is stored in Redis."""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from rwq.errors import RwqError

MIN_PRIORITY = 0
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5
# Pending score = (MAX_PRIORITY - priority) * PRIORITY_BAND + enqueued epoch ms, so a lower
# score runs first: higher priority first, then FIFO. 2**43 ms is ~278 years per band.
PRIORITY_BAND = 2**43

JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
"""Compact, ASCII-only JSON (so its length in characters is its size in bytes)."""

# Ids need uniqueness, not secrecy: a fast generator seeded from the OS, reseeded in children.
_random = random.Random(os.urandom(16))
_RANDOM_BITS = 56
# The last id's (ms, random part): ids of one millisecond count up from it (see new_job_id).
_last = [0, 0]
_id_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _id_lock
    _random.seed(os.urandom(16))
    _last[:] = [0, 0]  # else parent and child would count up from the same id
    _id_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class JobError(RwqError):
    """A job cannot be built: bad payload, priority or size."""


class PayloadTooLarge(JobError):
    """The payload's JSON encoding exceeds the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"payload is {size} bytes, over the {limit}-byte limit (setting payload_limit)"
        )


def new_job_id() -> str:
    """A 26-character id that sorts by creation time: 48-bit ms clock, 56 random bits (hex).

    Ids one process makes within a millisecond count up from a random start, so they sort in
    the order they were made: jobs of one priority enqueued in the same millisecond (a batch)
    tie on their pending score and Redis orders them by id.
    """
    ms = time.time_ns() // 1_000_000
    with _id_lock:
        last_ms, last_rand = _last
        if ms > last_ms:
            rand = _random.getrandbits(_RANDOM_BITS - 1)  # half the range left to count up
        else:  # same millisecond, or the clock stepped back
            ms, rand = last_ms, last_rand + 1
            if rand >> _RANDOM_BITS:
                ms, rand = ms + 1, 0
        _last[:] = [ms, rand]
    return f"{ms:012x}{rand:014x}"


def pending_score(priority: int, enqueued_ms: float) -> float:
    """The pending-set score of a job (lower runs first)."""
    return (MAX_PRIORITY - priority) * PRIORITY_BAND + int(enqueued_ms)


def encode_payload(payload: Any, limit: int) -> str:
    """Compact JSON of ``payload``; raises :class:`JobError` if it is not JSON or too big."""
    try:
        text = JSON.encode(payload)
    except (TypeError, ValueError) as exc:
        raise JobError(f"payload is not JSON-serialisable: {exc}") from None
    size = len(text)  # ASCII-only JSON
    if size > limit:
        raise PayloadTooLarge(size, limit)
    return text


DEFAULT_RESULT_MAX_BYTES = 64 * 1024
"""The default of the setting ``result_max_bytes``."""


def encode_result(value: Any, limit: int) -> tuple[str, str]:
    """A handler's return value as stored: ``(json, "")``, or ``("", note)`` when it cannot be
    kept (not JSON, or its encoding over ``limit`` bytes). ``None`` is ``("", "")``: nothing
    to store. The job completes either way; the note says why its result is missing."""
    if value is None:
        return "", ""
    try:
        text = JSON.encode(value)
    except Exception as exc:  # a handler's return value is hostile input too
        return "", f"result not kept: not JSON-serialisable ({_shorten(exc)})"
    if len(text) > limit:  # ASCII-only JSON: chars == bytes
        return "", (
            f"result not kept: {len(text)} bytes, over the {limit}-byte limit "
            "(setting result_max_bytes)"
        )
    return text, ""


def _shorten(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # a hostile __str__ in the value
        text = type(exc).__name__
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 200 else text[:197] + "..."


def decode_result(text: str | None) -> Any:
    """The result stored as ``text`` (None when there is none)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


LABEL_VALUE_MAX = 64
"""Characters kept of a string label value."""


def pick_labels(payload: Any, names: tuple[str, ...]) -> dict[str, Any] | None:
    """The labels of a job: the fields ``names`` of a dict payload whose values are scalars
    (strings cut to :data:`LABEL_VALUE_MAX` characters), or None when there are none.

    Nested values, lists, ``None`` and non-finite floats are left out. Stored (in the job's
    hash and its events) as compact ASCII JSON, which escapes every control character, so
    the text never holds the enqueue record's separators.
    """
    if not names or not isinstance(payload, dict):
        return None
    found: dict[str, Any] | None = None
    for name in names:
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            value = value[:LABEL_VALUE_MAX]
        elif isinstance(value, float):
            if not math.isfinite(value):
                continue
        elif not isinstance(value, int):  # bool is an int
            continue  # nested objects, lists
        if found is None:
            found = {}
        found[name] = value
    return found


def decode_labels(text: str | None) -> dict[str, Any] | None:
    """The labels object stored as ``text`` (see :func:`pick_labels`); None if there is
    none or it is not a JSON object."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None


def check_priority(priority: int) -> int:
    # bool is an int subclass, but True is not a priority.
    if (
        not isinstance(priority, int)
        or isinstance(priority, bool)
        or not MIN_PRIORITY <= priority <= MAX_PRIORITY
    ):
        raise JobError(
            f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, "
            f"got {priority!r}"
        )
    return priority


def _timeout(value: Any) -> float | None:
    """A stored timeout; None for none, or for one no rwq producer wrote (not positive)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    return None


def _result_ttl(value: Any) -> float | None:
    """A stored result TTL; None for none, or for one no rwq producer wrote."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    return None


def _ms(value: str | None) -> float | None:
    return float(value) if value else None


@dataclass(slots=True)
class Job:
    """One unit of work. Times are epoch milliseconds taken from the Redis server's clock."""

    id: str
    queue: str
    payload: Any
    priority: int = DEFAULT_PRIORITY
    tenant: str | None = None
    attempts: int = 0
    max_retries: int = 3
    state: str = "pending"
    created_at: float | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    run_at: float | None = None
    dead_at: float | None = None
    last_error: str | None = None
    traceback: str | None = None
    trace_id: str | None = None
    worker: str | None = None
    duration_ms: float | None = None
    labels: dict[str, Any] | None = None
    """Payload fields copied at enqueue (setting ``event_labels``); every job event has them."""
    timeout: float | None = None
    """Seconds its handler may run (its own; None: the queue's or the worker's default)."""
    result: Any = None
    """What its handler returned (a completed job, while kept: ``result_ttl``)."""
    result_error: str | None = None
    """Why a completed job has no result although its handler returned one (not JSON, too
    large)."""
    result_ttl: float | None = None
    """Seconds its result is kept once completed (its own; None: the setting ``result_ttl``)."""

    @classmethod
    def from_fields(cls, fields: dict[str, str], job_id: str = "", queue: str = "") -> Job:
        """Build a job from its Redis hash: ``spec`` (JSON set by the producer) and the
        fields the scripts maintain. ``job_id`` and ``queue`` come from the key."""
        try:
            spec = json.loads(fields.get("spec") or "{}")
        except ValueError:
            spec = {}
        if not isinstance(spec, dict):
            spec = {}
        return cls(
            id=job_id or fields.get("id", ""),
            queue=queue or fields.get("queue", "") or str(spec.get("queue", "")),
            payload=spec.get("payload"),
            priority=int(fields.get("priority", DEFAULT_PRIORITY)),
            tenant=fields.get("tenant") or None,
            attempts=int(fields.get("attempts", 0)),
            max_retries=int(spec.get("max_retries", 0)),
            state=fields.get("state", "pending"),
            created_at=spec.get("created_at"),
            enqueued_at=_ms(fields.get("enqueued_at")),
            started_at=_ms(fields.get("started_at")),
            finished_at=_ms(fields.get("finished_at")),
            run_at=_ms(fields.get("run_at")),
            dead_at=_ms(fields.get("dead_at")),
            last_error=fields.get("error") or None,
            traceback=fields.get("traceback") or None,
            trace_id=spec.get("trace_id"),
            worker=fields.get("worker") or None,
            duration_ms=_ms(fields.get("duration_ms")),
            labels=decode_labels(labels) if (labels := fields.get("labels")) else None,
            timeout=_timeout(spec.get("timeout")),
            result=decode_result(fields.get("result")),
            result_error=fields.get("result_error") or None,
            result_ttl=_result_ttl(spec.get("result_ttl")),
        )

    @classmethod
    def from_flat(cls, flat: list[str], job_id: str, queue: str) -> Job:
        """Build a job from a flat ``[field, value, ...]`` list as HGETALL in Lua returns."""
        it = iter(flat)
        return cls.from_fields(dict(zip(it, it, strict=True)), job_id, queue)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field (the shape ``--json`` output and plugins see)."""
        out: dict[str, Any] = {
            "id": self.id,
            "queue": self.queue,
            "payload": self.payload,
            "priority": self.priority,
            "tenant": self.tenant,
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "state": self.state,
            "created_at": self.created_at,
            "enqueued_at": self.enqueued_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "run_at": self.run_at,
            "dead_at": self.dead_at,
            "last_error": self.last_error,
            "traceback": self.traceback,
            "trace_id": self.trace_id,
            "worker": self.worker,
            "duration_ms": self.duration_ms,
            "labels": self.labels,
            "timeout": self.timeout,
            "result": self.result,
            "result_error": self.result_error,
            "result_ttl": self.result_ttl,
        }
        return out
