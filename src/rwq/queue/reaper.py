"""The reaper: jobs held by workers whose heartbeat expired go back to their queues.

Every long-running rwq process (worker, TUI, plugin host, demo, ``rwq reaper``) runs a
:class:`Reaper`; one of them at a time holds the lock and reaps, so orphaned jobs are reaped
even when no worker is alive.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rwq.outage import OUTAGE_ERRORS, Outage
from rwq.queue.broker import Broker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reaped:
    """What one reap pass did."""

    workers: list[str] = field(default_factory=list)
    requeued: int = 0
    dead: int = 0
    unreachable: list[str] = field(default_factory=list)
    """Queues of dead workers whose server did not answer: retried on the next pass (the
    worker stays in the registry until all its queues are released)."""


def reap(broker: Broker, *, lock_ms: int | None = None, owner: str = "") -> Reaped | None:
    """Release the jobs of every dead worker, then forget the worker.

    Only one process reaps at a time (a lock key with a TTL); returns None when another holds
    the lock. Each queue's release is atomic and counts the lost attempt; a job past its
    retries is dead-lettered.
    """
    keys = broker.keys
    client = broker.client
    ttl = lock_ms or int(broker.settings.reaper_interval * 1000)
    if not client.set(keys.reaper_lock, owner or "reaper", nx=True, px=max(ttl, 100)):
        return None
    workers = client.hgetall(keys.workers)
    if not workers:
        return Reaped()
    ids = list(workers)
    pipe = client.pipeline(transaction=False)
    for worker_id in ids:
        pipe.exists(keys.heartbeat(worker_id))
    alive = pipe.execute()
    gone: list[str] = []
    unreachable: list[str] = []
    requeued = dead = 0
    for worker_id, is_alive in zip(ids, alive, strict=True):
        if is_alive:
            continue
        try:
            info = json.loads(workers[worker_id])
        except ValueError:
            info = {}
        if not isinstance(info, dict):
            info = {}
        queues = info.get("queues", [])
        r = d = 0
        missed = False
        for queue in queues:
            try:
                qr, qd = broker.release(
                    queue, worker_id, "worker_lost", f"worker {worker_id} stopped heartbeating"
                )
            except OUTAGE_ERRORS:  # a dead shard: the other queues are released meanwhile
                unreachable.append(str(queue))
                missed = True
                continue
            r += qr
            d += qd
        requeued += r
        dead += d
        if missed:
            if r or d:
                log.warning(
                    "reaped %d job(s) of worker %s; more on a shard that is away", r + d, worker_id
                )
            continue
        client.hdel(keys.workers, worker_id)
        client.xadd(
            keys.system_events,
            {
                "type": "worker.status",
                "worker": worker_id,
                "state": "dead",
                "host": str(info.get("host", "")),
                "pid": int(info.get("pid", 0)),
                "queues": ",".join(queues),
                "current": 0,  # its jobs were just taken back
                "processed": int(info.get("processed", 0)),  # as of its last heartbeat
            },
            maxlen=broker.settings.events_maxlen,
            approximate=True,
        )  # fmt: skip
        gone.append(worker_id)
        log.warning("reaped worker %s: %d jobs requeued, %d dead-lettered", worker_id, r, d)
    return Reaped(gone, requeued, dead, sorted(set(unreachable)))


class ShardsAway(Exception):
    """Dead workers' queues that a reap pass could not reach (for the log line)."""

    def __init__(self, queues: list[str]) -> None:
        super().__init__(f"cannot release the jobs of {', '.join(queues[:5])}")


class Reaper:
    """Reap passes every ``reaper_interval`` for a long-running process, surviving outages.

    After an outage the reaper waits one ``heartbeat_ttl`` before its next pass: heartbeats
    that expired while Redis was away must get the chance to be renewed by their live workers
    before those workers are taken for dead.

    Args:
        broker: the queue's broker.
        owner: who holds the reaper lock (a worker id, ``tui:<pid>``...), for the lock's value.
        log: the process's logger (outages are logged there, once each).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        broker: Broker,
        owner: str,
        log: logging.Logger = log,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.owner = owner
        self.clock = clock
        cap = broker.settings.outage_backoff_max
        self.outage = Outage(f"reaper ({owner})", log, cap=cap)
        self.shards = Outage(f"reaper ({owner}): queues of dead workers", log, cap=cap)
        """Dead workers' queues the reaper could not reach (a shard away), logged once."""
        self._next = 0.0

    def maybe_reap(self) -> Reaped | None:
        """Reap if a pass is due and the lock is free; None otherwise (or Redis is away)."""
        now = self.clock()
        if now < self._next:
            return None
        settings = self.broker.settings
        self._next = now + settings.reaper_interval
        try:
            if self.outage.down:
                # Back: heartbeats that expired while Redis was away must be renewed by their
                # live workers before those are taken for dead, so the first pass waits.
                self.broker.client.exists(self.broker.keys.workers)
                self.outage.succeeded()
                self._next = now + max(settings.reaper_interval, settings.heartbeat_ttl)
                return None
            result = reap(self.broker, owner=self.owner)
        except OUTAGE_ERRORS as exc:
            self._next = now + self.outage.failed(exc)
            return None
        if result is not None and result.unreachable:
            self.shards.failed(ShardsAway(result.unreachable))
        elif result is not None:
            self.shards.succeeded()
        return result

    def run(
        self,
        stop: Callable[[float], bool],
        on_reaped: Callable[[list[str], int, int], None] | None = None,
    ) -> None:
        """Reap until ``stop(seconds)`` (a wait, such as ``threading.Event.wait``) is true;
        ``on_reaped(workers, requeued, dead_lettered)`` after each pass that reaped."""
        failed = False
        while True:
            try:
                result = self.maybe_reap()
                if result is not None and result.workers and on_reaped is not None:
                    on_reaped(result.workers, result.requeued, result.dead)
            except Exception:  # a bug must not end the reaping of a long-running process
                if not failed:
                    self.outage.log.exception("reaper (%s) failed; trying again", self.owner)
                failed = True
            if stop(max(0.01, self._next - self.clock())):
                return


class ReaperThread:
    """A :class:`Reaper` in a daemon thread, for processes that are not workers (the TUI,
    the plugin host, the demo): orphaned jobs are reaped even when no worker is alive."""

    def __init__(self, broker: Broker, owner: str, log: logging.Logger = log) -> None:
        self.reaper = Reaper(broker, owner, log)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start reaping (a no-op if it runs)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.reaper.run, args=(self._stop.wait,), name="rwq-reaper", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop reaping; waits briefly for a pass under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
