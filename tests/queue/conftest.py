"""Queue fixtures: broker, producer and admin on a standalone server and on a cluster.

The ``backend`` fixture is parametrised, so every test that asks for ``broker``, ``producer``,
``admin`` or ``start_worker`` runs twice: once on the session's standalone Valkey and once on
the 3-master cluster (marked ``cluster``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.producer import Producer
from rwq.queue.worker import Handler, Worker, WorkerOptions

WaitUntil = Callable[..., Any]


@dataclass(frozen=True)
class Backend:
    """A flushed client and the settings that point at its server."""

    name: str
    client: Any
    settings: Settings


@pytest.fixture(params=["standalone", pytest.param("cluster", marks=pytest.mark.cluster)])
def backend(request: pytest.FixtureRequest, settings: Settings) -> Backend:
    # Fast retries so retry and dead-letter paths finish in milliseconds.
    fast = settings.replace(backoff_base=0.01, backoff_max=0.02)
    if request.param == "standalone":
        return Backend("standalone", request.getfixturevalue("redis_client"), fast)
    url = request.getfixturevalue("cluster_url")
    return Backend(
        "cluster", request.getfixturevalue("cluster_client"), fast.replace(redis_url=url)
    )


@pytest.fixture
def make_broker(backend: Backend) -> Callable[..., Broker]:
    """Brokers on the backend with settings changed by keyword (``make_broker(read_only=True)``)."""

    def make(**changes: Any) -> Broker:
        return Broker(backend.client, backend.settings.replace(**changes))

    return make


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker()


@pytest.fixture
def producer(broker: Broker) -> Producer:
    return Producer(broker)


@pytest.fixture
def admin(broker: Broker) -> Admin:
    return Admin(broker)


@pytest.fixture
def wait_until() -> WaitUntil:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""

    def wait(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what or predicate}")
            time.sleep(0.01)

    return wait


class RunningWorker:
    """A :class:`Worker` running ``run()`` in a thread."""

    def __init__(self, worker: Worker, **run_args: Any) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, kwargs=run_args, daemon=True)
        self.thread.start()

    def _run(self, **run_args: Any) -> None:
        try:
            self.worker.run(**run_args)
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def join(self, timeout: float = 10.0) -> None:
        """Wait for ``run()`` to return; re-raise what it raised."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error

    def stop(self, timeout: float = 10.0) -> None:
        self.worker.stop()
        self.join(timeout)


StartWorker = Callable[..., RunningWorker]


@pytest.fixture
def start_worker(broker: Broker) -> Iterator[StartWorker]:
    """Start workers in threads (``start_worker(queues, handlers, **options)``); every one
    still running is stopped at teardown."""
    running: list[RunningWorker] = []

    def start(
        queues: Sequence[str],
        handlers: Mapping[str, Handler],
        *,
        on: Broker | None = None,
        max_jobs: int | None = None,
        **options: Any,
    ) -> RunningWorker:
        worker = Worker(on or broker, queues, handlers, WorkerOptions(**options))
        handle = RunningWorker(worker, max_jobs=max_jobs)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.worker.stop()
    for handle in running:
        handle.thread.join(10.0)


@pytest.fixture
def read_events(broker: Broker) -> Callable[[str], list[Event]]:
    """Every event still in ``queue``'s stream, oldest first."""

    def read(queue: str) -> list[Event]:
        entries = broker.client.xrange(broker.queue_keys(queue).events)
        return [Event.from_entry(entry_id, fields, queue) for entry_id, fields in entries]

    return read
