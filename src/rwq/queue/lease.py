"""A worker's lease: its registry entry and heartbeat key, renewed by a thread while it runs,
and the ``worker.status`` events that report it."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from rwq.outage import Outage
from rwq.queue.broker import Broker
from rwq.queue.runner import REDIS_ERRORS, JobRunner

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure


class Lease:
    """The worker ``runner`` works for, as the registry and the reaper see it.

    While the heartbeat key lives, the worker's jobs are its own; once it expires, the reaper
    hands them back to their queues.
    """

    def __init__(
        self, broker: Broker, worker_id: str, queues: Sequence[str], concurrency: int,
        runner: JobRunner,
    ) -> None:  # fmt: skip
        self.broker = broker
        self.id = worker_id
        self.queues = queues
        self.concurrency = concurrency
        self.runner = runner
        self.state = "starting"
        """``starting``, ``running``, ``stopping`` or ``stopped`` (no renewal after that)."""
        self.lock = threading.Lock()
        """Held while the lease is renewed or dropped: no heartbeat may register the worker
        again after it left."""
        self._info: dict[str, Any] = {}

    def register(self) -> None:
        """Take the lease and enter the registry."""
        keys = self.broker.keys
        info = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "concurrency": self.concurrency,
            "started_at": time.time() * 1000,
        }
        ttl = int(self.broker.settings.heartbeat_ttl * 1000)
        self._info = info
        pipe = self.broker.client.pipeline(transaction=False)
        pipe.set(keys.heartbeat(self.id), self._status_json(), px=ttl)
        pipe.hset(keys.workers, self.id, self._info_json())
        pipe.sadd(keys.queues, *self.queues)
        pipe.execute()
        self.publish_status()

    def renew(self, finished: threading.Event) -> None:
        """Renew the lease every heartbeat interval until ``finished`` or stopped (the
        heartbeat thread). Redis being away is logged once per outage and never ends it."""
        settings = self.broker.settings
        keys = self.broker.keys
        outage = Outage(f"worker {self.id}: heartbeat", log, cap=settings.heartbeat_interval)
        failed_unexpectedly = False
        while not finished.wait(settings.heartbeat_interval):
            try:
                with self.lock:
                    if self.state == "stopped":
                        return
                    pipe = self.broker.client.pipeline(transaction=False)
                    pipe.set(
                        keys.heartbeat(self.id),
                        self._status_json(),
                        px=int(settings.heartbeat_ttl * 1000),
                    )
                    # Again each time: a reaper that found our lease expired (say Redis was
                    # away for longer than the TTL) forgot us, and forgotten workers' jobs
                    # could never be reaped.
                    pipe.hset(keys.workers, self.id, self._info_json())
                    pipe.execute()
                self.publish_status()
                outage.succeeded()
            except REDIS_ERRORS as exc:
                outage.failed(exc)  # tried again at the next interval
            except Exception:  # a bug must not end the lease of a live worker
                if not failed_unexpectedly:
                    log.exception("heartbeat failed; trying again every interval")
                failed_unexpectedly = True

    def leave(self) -> None:
        """Hand back every job held, report ``stopped`` and drop the lease; call it with
        :attr:`lock` held.

        The jobs of a queue whose server is away (a cluster shard) cannot be handed back now:
        the worker then stays in the registry without a lease, so a reaper hands them back
        once that server is back.

        Raises:
            redis errors of an outage: the registry's server is away (nothing was dropped).
        """
        missed: list[str] = []
        for qname in self.queues:
            try:
                self.broker.release(qname, self.id, "shutdown", "")
            except REDIS_ERRORS:
                missed.append(qname)
        self.state = "stopped"
        self.publish_status()
        keys = self.broker.keys
        self.broker.client.delete(keys.heartbeat(self.id))
        if missed:
            log.warning(
                "worker %s: the jobs it holds on %s go back to their queues when their server "
                "is back (the reaper hands them back)", self.id, ", ".join(missed),
            )  # fmt: skip
            return
        self.broker.client.hdel(keys.workers, self.id)

    def publish_status(self) -> None:
        """Add a ``worker.status`` event to the system stream."""
        self.broker.client.xadd(
            self.broker.keys.system_events,
            {
                "type": "worker.status",
                "worker": self.id,
                "state": self.state,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": ",".join(self.queues),
                "current": self.runner.inflight,
                "processed": self.runner.recorder.processed,
            },
            maxlen=self.broker.settings.events_maxlen,
            approximate=True,
        )

    def _info_json(self) -> str:
        """The registry entry; carries the counts so a reaper can report them."""
        return json.dumps(
            {
                **self._info,
                "processed": self.runner.recorder.processed,
                "failed": self.runner.recorder.failed,
            }
        )

    def _status_json(self) -> str:
        return json.dumps(
            {
                "state": self.state,
                "current": self.runner.inflight,
                "processed": self.runner.recorder.processed,
                "failed": self.runner.recorder.failed,
                "ts": time.time() * 1000,
            }
        )
