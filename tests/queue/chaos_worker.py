"""A worker process for the chaos tests: ``python chaos_worker.py URL QUEUE NAME [PREFETCH]``.

Its handler only sleeps 20-50 ms; what happened is read back from the queue's event stream.
SIGTERM stops it gracefully; the tests SIGKILL it to play a crash.
"""

from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.broker import Broker
from rwq.queue.job import Job
from rwq.queue.worker import Worker, WorkerOptions

SETTINGS = {
    "heartbeat_interval": 0.3,
    "heartbeat_ttl": 1.5,
    "reaper_interval": 0.5,
    "events_maxlen": 100_000,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
}
"""Shared with the tests, so producer and workers trim the event stream alike."""


def handle(job: Job) -> None:
    time.sleep(random.uniform(0.02, 0.05))


def main(url: str, queue: str, name: str, prefetch: int = 0) -> None:
    logging.basicConfig(level=logging.INFO, format=f"{name} %(levelname)s %(message)s")
    settings = Settings(
        redis_url=url, state_dir=Path(tempfile.gettempdir()), persistence=False, **SETTINGS
    )
    broker = Broker(connect(settings), settings)
    worker = Worker(broker, [queue], {queue: handle}, WorkerOptions(name=name, prefetch=prefetch))
    worker.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:]))
