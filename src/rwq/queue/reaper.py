"""The reaper: jobs held by workers whose heartbeat expired go back to their queues."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from rwq.queue.broker import Broker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reaped:
    """What one reap pass did."""

    workers: list[str] = field(default_factory=list)
    requeued: int = 0
    dead: int = 0


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
        for queue in queues:
            qr, qd = broker.release(
                queue, worker_id, "worker_lost", f"worker {worker_id} stopped heartbeating"
            )
            r += qr
            d += qd
        requeued += r
        dead += d
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
    return Reaped(gone, requeued, dead)
