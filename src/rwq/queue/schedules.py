"""Periodic jobs in Redis: the schedules (from ``rwq.yaml`` or ``rwq schedule add``), their
state, and firing one tick of one, exactly once (the ``fire_schedule`` script).

A schedule is one hash under its queue's hash tag (:meth:`QueueKeys.schedule`): its
definition and its state side by side, so the script that fires a tick reads both and
enqueues the job on one cluster slot. The registry hash (:attr:`Keys.schedules`) maps each
name to its queue, for listing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rwq.errors import RwqError
from rwq.queue.broker import Broker
from rwq.queue.job import JSON, JobError, encode_payload, pick_labels
from rwq.schedule_spec import ScheduleSpec, ScheduleSpecError, make_spec

log = logging.getLogger(__name__)

ORIGIN_FILE = "rwq.yaml"
ORIGIN_RUNTIME = "runtime"


class ScheduleError(RwqError):
    """A schedule operation was refused: unknown name, read-only mode, a payload too big."""


@dataclass(frozen=True)
class ScheduleState:
    """A schedule as stored: its definition and where it came from, and its state. Times are
    epoch ms (ticks on the schedule's clock, ``last_fired_ms`` on the server's)."""

    spec: ScheduleSpec
    origin: str
    """``rwq.yaml`` (synced by a scheduler) or ``runtime`` (``rwq schedule add``)."""
    rev: str
    """Digest of the definition: a scheduler fires only the definition it read."""
    next_ms: int | None
    """The next tick due (None: never)."""
    last_tick: int | None = None
    last_job: str | None = None
    last_fired_ms: int | None = None
    fired: int = 0
    skipped: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the definition's fields, then the state (``--json``)."""
        return {
            **self.spec.canonical(),
            "expression": self.spec.expression,
            "missed": self.spec.missed,
            "origin": self.origin,
            "next_ms": self.next_ms,
            "last_tick": self.last_tick,
            "last_job": self.last_job,
            "last_fired_ms": self.last_fired_ms,
            "fired": self.fired,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class Fired:
    """What one call of the fire script did: ``fired`` (``job_id`` enqueued), ``skipped``,
    ``done`` (fired already), ``changed`` (read again) or ``gone`` (removed)."""

    outcome: str
    job_id: str = ""


def server_ms(client: Any) -> int:
    """The Redis server's clock in epoch ms (a cluster answers per node: any one)."""
    answer = client.time()
    if isinstance(answer, dict):
        answer = next(iter(answer.values()))
    seconds, micros = answer
    return int(seconds) * 1000 + int(micros) // 1000


class ScheduleStore:
    """Add, list, remove and fire schedules over a :class:`Broker`."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.client = broker.client
        self.keys = broker.keys

    # -- changes -----------------------------------------------------------------------------

    def add(self, spec: ScheduleSpec, origin: str = ORIGIN_RUNTIME) -> bool:
        """Store ``spec`` (replacing the schedule of that name, on whatever queue); False when
        the same definition was there already, state kept. A changed definition keeps its
        last tick and is next due at its first tick from now.

        Raises:
            ScheduleError: read-only mode, or its payload is over ``payload_limit``.
        """
        self._check_writable("schedule add")
        settings = self.broker.settings
        try:
            payload = encode_payload(spec.payload, settings.payload_limit)
        except JobError as exc:
            raise ScheduleError(f"schedule {spec.name}: {exc}") from None
        rev = definition_rev(spec, settings.max_retries)
        qk = self.broker.queue_keys(spec.queue)
        key = qk.schedule(spec.name)
        before = self.client.hget(self.keys.schedules, spec.name)
        if before == spec.queue:
            current = self.client.hmget(key, "rev", "origin")
            if current == [rev, origin]:
                return False
        elif before is not None:  # it moves to another queue: its old state goes
            self.client.delete(self.broker.queue_keys(before).schedule(spec.name))
        labels = pick_labels(spec.payload, settings.label_fields)
        job_spec = (
            f'{{"payload":{payload},"max_retries":{settings.max_retries},'
            f'"schedule":{JSON.encode(spec.name)}'
        )
        fields = {
            "spec": json.dumps(spec.canonical(), sort_keys=True, separators=(",", ":")),
            "rev": rev,
            "origin": origin,
            "priority": str(spec.priority),
            "tenant": spec.tenant or "",
            "labels": JSON.encode(labels) if labels else "",
            "job_spec": job_spec,
        }
        if self.client.hget(key, "rev") != rev:
            fields["next_ms"] = str(spec.next_tick(server_ms(self.client)))
        self.client.hset(key, mapping=fields)
        self.client.hset(self.keys.schedules, spec.name, spec.queue)
        self.broker.register_queues([spec.queue])
        self.client.publish(self.keys.schedules_channel, spec.name)
        return True

    def remove(self, name: str) -> bool:
        """Delete the schedule ``name``; False if there is none. Its jobs already enqueued
        stay."""
        self._check_writable("schedule remove")
        queue = self.client.hget(self.keys.schedules, name)
        if queue is None:
            return False
        self.client.delete(self.broker.queue_keys(queue).schedule(name))
        self.client.hdel(self.keys.schedules, name)
        self.client.publish(self.keys.schedules_channel, name)
        return True

    def sync(self, specs: Mapping[str, ScheduleSpec]) -> list[str]:
        """Store the schedules of ``rwq.yaml``; they replace schedules of the same name added
        at run time. Schedules no longer in the file stay (``rwq schedule remove``). Returns
        the names stored anew or changed."""
        changed = []
        origins = self._origins(list(specs))
        for name, spec in specs.items():
            if origins.get(name) == ORIGIN_RUNTIME:
                log.warning("schedule %s: rwq.yaml replaces the one added at run time", name)
            if self.add(spec, ORIGIN_FILE):
                changed.append(name)
        return changed

    def _origins(self, names: list[str]) -> dict[str, str]:
        return {s.name: s.origin for s in self.list() if s.name in names}

    def _check_writable(self, operation: str) -> None:
        if self.broker.settings.read_only:
            raise ScheduleError(f"{operation} refused: rwq is in read-only mode")

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[ScheduleState]:
        """Every schedule, by name."""
        where: dict[str, str] = self.client.hgetall(self.keys.schedules)
        names = sorted(where)
        if not names:
            return []

        def build(pipe: Any) -> None:
            for name in names:
                pipe.hgetall(self.broker.queue_keys(where[name]).schedule(name))

        found = self.broker.execute(build)
        states = []
        for name, fields in zip(names, found, strict=True):
            state = _state(name, fields)
            if state is not None:
                states.append(state)
        return states

    def get(self, name: str) -> ScheduleState | None:
        queue = self.client.hget(self.keys.schedules, name)
        if queue is None:
            return None
        return _state(name, self.client.hgetall(self.broker.queue_keys(queue).schedule(name)))

    # -- firing ------------------------------------------------------------------------------

    def fire(
        self, state: ScheduleState, tick: int, next_ms: int, missed: int = 0, skip: bool = False
    ) -> Fired:
        """Fire ``tick`` of ``state`` (as read), recording ``next_ms`` as the next due tick;
        with ``skip``, pass the tick without a job. Any number of callers may fire the same
        tick: one job is enqueued."""
        qk = self.broker.queue_keys(state.spec.queue)
        args = [
            str(self.broker.settings.events_maxlen),
            self.keys.notify_channel,
            state.spec.queue,
            state.name,
            state.rev,
            "" if state.next_ms is None else str(state.next_ms),
            str(tick),
            str(next_ms),
            str(missed),
            "skip" if skip else "fire",
        ]
        outcome, job_id = self.broker.scripts.fire_schedule(keys=[qk.tag], args=args)
        return Fired(str(outcome), str(job_id))


def definition_rev(spec: ScheduleSpec, max_retries: int) -> str:
    """A digest of what a schedule enqueues and when."""
    text = json.dumps([spec.canonical(), max_retries], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _state(name: str, fields: Mapping[str, str]) -> ScheduleState | None:
    """A stored schedule; None for one removed meanwhile or not written by rwq."""
    if not fields.get("spec"):
        return None
    try:
        raw = json.loads(fields["spec"])
        spec = make_spec(name, {k: v for k, v in raw.items() if k != "name"})
    except (ValueError, AttributeError, ScheduleSpecError) as exc:
        log.warning("schedule %s: stored definition unreadable (%s); ignored", name, exc)
        return None
    return ScheduleState(
        spec=spec,
        origin=fields.get("origin", ORIGIN_RUNTIME),
        rev=fields.get("rev", ""),
        next_ms=_int(fields.get("next_ms")),
        last_tick=_int(fields.get("last_tick")),
        last_job=fields.get("last_job") or None,
        last_fired_ms=_int(fields.get("last_fired_ms")),
        fired=_int(fields.get("fired")) or 0,
        skipped=_int(fields.get("skipped")) or 0,
    )
