"""What feeds the event bus: the queue event streams, the samplers and local events.

:class:`StreamFeed` follows every queue's stream and the system stream from "now", in its own
thread, without consumer groups, so every host process sees every event. The samplers publish
``queue.stats`` and ``system.health`` only while someone subscribes, at the smallest interval
asked. :func:`publish_local` is for admin operations and plugin lifecycle.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Self

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from rwq.connection import is_cluster
from rwq.outage import Outage
from rwq.plugins.contract.events import (
    QUEUE_STATS,
    SYSTEM_HEALTH,
    EventTypeError,
    is_known_type,
    local_event,
)
from rwq.plugins.eventbus.bus import EventBus
from rwq.queue.admin import Admin
from rwq.queue.events import Event
from rwq.queue.keys import InvalidQueueName, Keys
from rwq.queue.stream import StreamReader

__all__ = ["HealthSampler", "StatsSampler", "StreamFeed", "publish_local"]

log = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.RedisError, RedisClusterException, OSError)
_BACKOFF_MAX = 2.0
_IDLE_MIN = 0.001


def publish_local(
    bus: EventBus,
    type: str,
    data: Mapping[str, Any] | None = None,
    *,
    source: str = "host",
    queue: str = "",
) -> Event:
    """Publish an event made in this process (an admin operation, a lifecycle change, an
    event a plugin emitted) and return it.

    Raises:
        EventTypeError: ``type`` is not a known event type.
    """
    if not is_known_type(type):
        raise EventTypeError(type, "not a known event type (see docs/plugin-events.md)")
    event = local_event(type, data, source=source, queue=queue)
    bus.publish(event)
    return event


class _Loop:
    """A daemon thread running ``_step`` until stopped, backing off while Redis is away."""

    name = "rwq-loop"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _wake(self) -> None:
        pass

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        outage = Outage(self.name, log, cap=_BACKOFF_MAX)  # logged once per outage
        while not self._stop.is_set():
            try:
                self._step()
                if outage.down:
                    outage.succeeded()
            except _REDIS_ERRORS as exc:
                self.errors += 1
                self.last_error = exc
                self._stop.wait(outage.failed(exc))
                self._recover()
            except Exception as exc:  # a bug must not end the feed silently
                self.errors += 1
                self.last_error = exc
                log.exception("%s failed", self.name)
                self._stop.wait(_BACKOFF_MAX)

    def _step(self) -> None:
        raise NotImplementedError

    def _recover(self) -> None:
        """Called after a Redis error and the backoff wait, before trying again."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StreamFeed(_Loop):
    """Follows every queue's event stream and the system stream into ``bus``.

    Only events added after :meth:`start` are published. Queues registered later are found
    within ``discover_interval`` seconds and read from their first event. On a standalone
    server one ``XREAD BLOCK`` covers every stream; on a cluster, where a multi-key XREAD
    across slots is refused, each stream gets its own non-blocking XREAD, pipelined per node,
    with a short sleep when nothing came.

    Args:
        client: a client with ``decode_responses=True`` (as :func:`rwq.connection.connect`).
        keys: the deployment's key space.
        bus: where to publish.
        block_ms: how long one XREAD waits on a standalone server (bounds :meth:`stop`).
        count: the most entries read per stream per call.
        discover_interval: seconds between looks at the queue registry.
        idle_sleep: the longest sleep on a cluster between polls that find nothing; the sleep
            starts at 1 ms after an event and doubles up to this while the streams are quiet.
    """

    name = "rwq-stream-feed"

    def __init__(
        self,
        client: Any,
        keys: Keys,
        bus: EventBus,
        *,
        block_ms: int = 100,
        count: int = 500,
        discover_interval: float = 1.0,
        idle_sleep: float = 0.02,
    ) -> None:
        super().__init__()
        self.client = client
        self.keys = keys
        self.bus = bus
        self.block_ms = block_ms
        self.count = count
        self.discover_interval = discover_interval
        self.idle_sleep = idle_sleep
        self._idle = _IDLE_MIN
        self.reader = StreamReader(client, count=count)
        self._next_discovery = 0.0

    def start(self) -> None:
        """Take every stream's current end as the starting point, then follow in a thread.

        If Redis is unreachable now the thread keeps trying and starts from when it gets in.
        """
        if self._thread is None and not self.reader.positions:
            try:
                self._begin()
            except _REDIS_ERRORS as exc:
                log.warning("%s: %s; will retry", self.name, exc)
        super().start()

    @property
    def cluster(self) -> bool:
        return self.reader.cluster

    @property
    def queues(self) -> list[str]:
        """The queues followed so far."""
        return sorted(q for q in list(self.reader.queues.values()) if q)

    def _begin(self) -> None:
        streams = {self.keys.system_events: ""}
        for name in sorted(self.client.smembers(self.keys.queues)):
            key = self._stream_key(name)
            if key is not None:
                streams[key] = name
        self.reader.follow(streams)
        self._next_discovery = time.monotonic() + self.discover_interval

    def _stream_key(self, queue: str) -> str | None:
        try:
            return self.keys.queue(queue).events
        except InvalidQueueName:
            log.warning("%s: ignoring invalid queue name %r in the registry", self.name, queue)
            return None

    def _discover(self) -> None:
        self._next_discovery = time.monotonic() + self.discover_interval
        known = set(self.reader.queues.values())
        found = {}
        for name in self.client.smembers(self.keys.queues):
            if name not in known:
                key = self._stream_key(name)
                if key is not None:
                    found[key] = name
        self.reader.follow(found, from_start=True)  # registered after we started: all new

    def _recover(self) -> None:
        if not self.cluster:
            return  # the client's pool reconnects by itself
        try:  # a failover may have moved slots: reload the map we route by
            self.client.nodes_manager.initialize()
        except _REDIS_ERRORS as exc:
            log.debug("%s: cluster map refresh failed: %s", self.name, exc)

    def _step(self) -> None:
        if not self.reader.positions:
            self._begin()
        if time.monotonic() >= self._next_discovery:
            self._discover()
        events = self.reader.read(block_ms=self.block_ms)
        if events:
            self.bus.publish_many(events)
        if self.cluster:
            if events:
                self._idle = _IDLE_MIN
            else:
                self._stop.wait(self._idle)
                self._idle = min(self._idle * 2, self.idle_sleep)


class _Sampler(_Loop):
    """Publishes one sampled event type at the smallest interval its subscribers ask for,
    and not at all while nobody subscribes; re-plans when subscriptions change."""

    event_type = ""

    def __init__(self, bus: EventBus) -> None:
        super().__init__()
        self.bus = bus
        self.samples = 0
        self.parked = 0
        """Times it went to sleep with no sample planned (nobody subscribes)."""
        self._changed = threading.Event()
        self._last: float | None = None
        bus.add_change_listener(self._changed.set)

    def _wake(self) -> None:
        self._changed.set()

    def stop(self, timeout: float = 5.0) -> None:
        self.bus.remove_change_listener(self._changed.set)
        super().stop(timeout)

    def _step(self) -> None:
        self._changed.clear()  # before reading the interval, so no change is missed
        interval = self.bus.sample_interval(self.event_type)
        if interval is None:
            self._last = None
            self.parked += 1
            self._changed.wait()
            return
        now = time.monotonic()
        due = now if self._last is None else self._last + interval
        if now >= due:
            self._last = now
            self.sample()
            self.samples += 1
            due = now + interval
        self._changed.wait(max(0.0, due - time.monotonic()))

    def sample(self) -> None:
        raise NotImplementedError


class StatsSampler(_Sampler):
    """Publishes ``queue.stats`` for every queue (``data``: the :class:`QueueStats` fields
    but ``queue``, which is the envelope's) while someone subscribes to it."""

    name = "rwq-stats-sampler"
    event_type = QUEUE_STATS

    def __init__(self, admin: Admin, bus: EventBus) -> None:
        super().__init__(bus)
        self.admin = admin

    def sample(self) -> None:
        stats = self.admin.stats()
        ts = stats.taken_at * 1000
        events = []
        for row in stats.queues:
            data = asdict(row)
            queue = data.pop("queue")
            events.append(local_event(QUEUE_STATS, data, source="sampler", queue=queue, ts=ts))
        self.bus.publish_many(events)


class HealthSampler(_Sampler):
    """Publishes ``system.health`` (process RSS and CPU, Redis PING latency and memory)
    while someone subscribes to it."""

    name = "rwq-health-sampler"
    event_type = SYSTEM_HEALTH

    def __init__(self, client: Any, bus: EventBus) -> None:
        super().__init__(bus)
        self.client = client
        self._cpu_mark = (time.monotonic(), _cpu_seconds())

    def sample(self) -> None:
        self.bus.publish(local_event(SYSTEM_HEALTH, self.measure(), source="sampler"))

    def measure(self) -> dict[str, Any]:
        """One reading: ``rss_bytes``, ``cpu_percent``, ``redis_latency_ms`` and
        ``redis_used_memory`` (the last two None when Redis does not answer)."""
        now, cpu = time.monotonic(), _cpu_seconds()
        then, cpu_then = self._cpu_mark
        self._cpu_mark = (now, cpu)
        cpu_percent = round(100 * (cpu - cpu_then) / (now - then), 2) if now > then else 0.0
        latency: float | None = None
        used: int | None = None
        try:
            start = time.perf_counter()
            self.client.ping()
            latency = round((time.perf_counter() - start) * 1000, 3)
            used = self._used_memory()
        except _REDIS_ERRORS as exc:
            log.debug("health sample: Redis did not answer: %s", exc)
        return {
            "rss_bytes": _rss_bytes(),
            "cpu_percent": cpu_percent,
            "redis_latency_ms": latency,
            "redis_used_memory": used,
        }

    def _used_memory(self) -> int:
        if is_cluster(self.client):
            per_node = self.client.info("memory", target_nodes=RedisCluster.PRIMARIES)
            return sum(int(info["used_memory"]) for info in per_node.values())
        return int(self.client.info("memory")["used_memory"])


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource  # not on every platform; peak rather than current RSS

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
