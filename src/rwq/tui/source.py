"""What the dashboard shows, read from Redis off the UI thread: queue stats, workers, the
server's health, and a bounded history of depth and throughput per queue for the charts."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from rwq.errors import RwqError
from rwq.outage import OUTAGE_ERRORS, REDIS_FAILURES, describe
from rwq.queue.admin import Admin, QueueStats, WorkerInfo
from rwq.queue.schedules import ScheduleState, ScheduleStore

ACTION_ERRORS: tuple[type[BaseException], ...] = (RwqError, *REDIS_FAILURES)
"""What an action of the dashboard may end with and says in a line: a refusal of rwq, or
Redis away (the dashboard outlives any outage)."""

HISTORY = 300
"""Samples kept per queue (five minutes at one a second)."""
STALE_AFTER = 15.0
"""Seconds without a heartbeat after which a worker is shown as stale."""


@dataclass(frozen=True)
class Health:
    """Whether the server answers, and how fast."""

    ok: bool
    latency_ms: float = 0.0
    error: str = ""

    def __str__(self) -> str:
        if not self.ok:
            return f"down: {self.error}"
        if self.error:  # answering, but part of a cluster is away
            return f"degraded: {self.error}"
        # Coarse on purpose: the header is redrawn only when this text changes.
        return "ok <1 ms" if self.latency_ms < 1 else f"ok {self.latency_ms:.0f} ms"


@dataclass(frozen=True)
class Sample:
    """One reading of everything the dashboard shows."""

    taken_at: float
    """Epoch seconds."""
    health: Health
    queues: list[QueueStats] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    """Completed jobs per second per queue since the previous sample."""
    schedules: list[ScheduleState] = field(default_factory=list)
    """Every periodic job with its next and last tick."""


class History:
    """Depth and throughput per queue over the last :data:`HISTORY` samples."""

    def __init__(self, size: int = HISTORY) -> None:
        self.size = size
        self.times: deque[float] = deque(maxlen=size)
        self.depth: dict[str, deque[float]] = {}
        self.rate: dict[str, deque[float]] = {}

    def add(self, sample: Sample) -> None:
        self.times.append(sample.taken_at)
        seen = set()
        for q in sample.queues:
            seen.add(q.queue)
            depth = self.depth.setdefault(q.queue, self._series())
            rate = self.rate.setdefault(q.queue, self._series())
            depth.append(float(q.pending + q.scheduled))
            rate.append(sample.rates.get(q.queue, 0.0))
        for name in list(self.depth):
            if name not in seen:  # a queue that went away (purged and unregistered)
                del self.depth[name], self.rate[name]

    def _series(self) -> deque[float]:
        # A queue first seen now has zeros before: every series lines up with `times`.
        series: deque[float] = deque(maxlen=self.size)
        series.extend(0.0 for _ in range(max(0, len(self.times) - 1)))
        return series


class DashboardSource:
    """Reads one :class:`Sample` at a time; blocking, so call it from a worker thread."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self._completed: dict[str, int] = {}
        self._last: float | None = None

    def read(self, queues: Sequence[str] | None = None) -> Sample:
        now = time.time()
        started = time.perf_counter()
        try:
            # Not a PING: on a cluster that goes to one node, maybe the one that is away. The
            # registry is what every reading needs.
            self.admin.client.exists(self.admin.broker.keys.workers)
            health = Health(True, (time.perf_counter() - started) * 1000)
            try:
                listed = self.admin.stats(queues).queues
            except OUTAGE_ERRORS as exc:  # a cluster shard away: show the others
                listed, health = self._reachable(queues, exc, health)
            workers = self.admin.workers()
            schedules = ScheduleStore(self.admin.broker).list()
        except REDIS_FAILURES as exc:  # an outage: said in the header until it ends
            return Sample(now, Health(False, error=describe(exc)))
        rates = self._rates(listed, now)
        return Sample(now, health, listed, workers, rates, schedules)

    def _reachable(
        self, queues: Sequence[str] | None, exc: BaseException, health: Health
    ) -> tuple[list[QueueStats], Health]:
        """The stats of the queues that answer, one by one, and a health that names how many
        do not."""
        listed: list[QueueStats] = []
        names = list(queues) if queues else self.admin.broker.queues()
        for name in names:
            try:
                listed.extend(self.admin.stats([name]).queues)
            except OUTAGE_ERRORS:
                continue
        away = len(names) - len(listed)
        if not away:
            return listed, health
        error = f"{away} of {len(names)} queue(s) unreachable: {describe(exc)}"
        return listed, Health(True, health.latency_ms, error)

    def _rates(self, queues: Sequence[QueueStats], now: float) -> dict[str, float]:
        elapsed = now - self._last if self._last is not None else 0.0
        rates: dict[str, float] = {}
        for q in queues:
            before = self._completed.get(q.queue)
            if before is not None and elapsed > 0:
                rates[q.queue] = max(0, q.completed_total - before) / elapsed
            self._completed[q.queue] = q.completed_total
        self._last = now
        return rates


def is_stale(worker: WorkerInfo, now: float, after: float = STALE_AFTER) -> bool:
    """A worker whose lease expired or whose last heartbeat is older than ``after`` seconds."""
    if not worker.alive or worker.last_heartbeat is None:
        return True
    return now - worker.last_heartbeat / 1000 > after
