"""Outages: workers keep running through a Redis restart and a cluster node killed under load,
the queues of healthy shards keep moving, and every job ends completed exactly once."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import key_slot

from rwq.config import Settings
from rwq.connection import connect
from rwq.outage import OUTAGE_ERRORS
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.queue.worker import Worker, WorkerOptions
from rwq.valkey.cluster import SLOTS, LocalCluster, start_cluster
from rwq.valkey.standalone import StandaloneServer


def outage_settings(base: Settings, url: str) -> Settings:
    """Short leases and timeouts, so an outage is noticed and outlived in seconds."""
    return base.replace(
        redis_url=url,
        heartbeat_interval=0.2,
        heartbeat_ttl=1.0,
        reaper_interval=0.3,
        socket_timeout=0.5,
        socket_connect_timeout=0.3,
        redis_retries=1,
        outage_backoff_max=0.5,
        history_limit=1_000_000,
        events_maxlen=1_000_000,
        backoff_base=0.01,
        backoff_max=0.02,
    )


class Done:
    """The job ids handlers ran, by queue (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: Counter[str] = Counter()
        self.by_queue: Counter[str] = Counter()

    def handler(self, job: Job) -> None:
        with self.lock:
            self.runs[job.id] += 1
            self.by_queue[job.queue] += 1
        time.sleep(0.002)

    def count(self, queue: str) -> int:
        with self.lock:
            return self.by_queue[queue]


class Load:
    """Enqueues to ``queues`` in a thread until stopped, through its own client; ids that
    failed to enqueue (their shard away) are kept apart."""

    def __init__(self, settings: Settings, queues: Sequence[str]) -> None:
        self.producer = Producer(Broker(connect(settings), settings))
        self.queues = queues
        self.enqueued: set[str] = set()
        self.refused: set[str] = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.004):
            n += 1
            for queue in self.queues:
                job_id = f"{queue}-{n}"
                try:
                    self.producer.enqueue(queue, {"n": n}, job_id=job_id)
                except OUTAGE_ERRORS:
                    self.refused.add(job_id)  # may have been stored with only the reply lost
                else:
                    self.enqueued.add(job_id)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


class Workers:
    """Workers running in threads, each with its own client like separate processes."""

    def __init__(self) -> None:
        self.threads: list[tuple[Worker, threading.Thread]] = []
        self.errors: list[BaseException] = []

    def start(self, settings: Settings, queues: Sequence[str], done: Done) -> None:
        worker = Worker(
            Broker(connect(settings), settings),
            queues,
            {"*": done.handler},
            WorkerOptions(idle_wait=0.2),
        )

        def run() -> None:
            try:
                worker.run()
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append((worker, thread))

    def all_running(self) -> bool:
        return all(t.is_alive() for _, t in self.threads) and not self.errors

    def stop(self) -> None:
        for worker, _ in self.threads:
            worker.stop()
        for _, thread in self.threads:
            thread.join(15)


@pytest.fixture
def workers() -> Iterator[Workers]:
    running = Workers()
    yield running
    running.stop()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def completions(broker: Broker, queue: str) -> Counter[str]:
    """How many ``job.completed`` events each job of ``queue`` has."""
    entries = broker.client.xrange(broker.queue_keys(queue).events)
    events = [Event.from_entry(entry_id, fields, queue) for entry_id, fields in entries]
    return Counter(str(e.data["job_id"]) for e in events if e.type == "job.completed")


def check_accounted(broker: Broker, queues: Sequence[str], load: Load, done: Done) -> None:
    """Every job enqueued was completed exactly once, nothing is left pending or held, and
    the only other completed jobs are ones whose enqueue failed with only the reply lost."""
    completed: Counter[str] = Counter()
    for queue in queues:
        completed.update(completions(broker, queue))
    assert load.enqueued <= set(completed), "jobs lost"
    assert set(completed) - load.enqueued <= load.refused
    assert max(completed.values()) == 1, "a job completed twice"
    stats = Admin(broker).stats(list(queues))
    for queue in stats.queues:  # nothing waiting, nothing stuck with a worker
        assert (queue.pending, queue.processing, queue.scheduled, queue.dead) == (0, 0, 0, 0)
    assert set(done.runs) >= load.enqueued


def outage_logs(caplog: pytest.LogCaptureFixture) -> Counter[str]:
    """How often each part logged the start of an outage."""
    return Counter(
        r.getMessage().split(": Redis unavailable")[0]
        for r in caplog.records
        if "Redis unavailable" in r.getMessage()
    )


# -- standalone --------------------------------------------------------------------------------


def test_a_worker_outlives_a_restart_of_redis(
    make_server: Callable[..., StandaloneServer],
    settings: Settings,
    workers: Workers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    server = make_server(persistence=True)
    here = outage_settings(settings, server.url)
    broker = Broker(connect(here), here)
    done = Done()
    workers.start(here, ["outage-a", "outage-b"], done)
    load = Load(here, ["outage-a", "outage-b"])
    wait_for(lambda: done.count("outage-a") >= 20, 20, "jobs before the outage")
    server.stop()
    time.sleep(2.0)  # past the heartbeat TTL: leases expire while Redis is away
    assert workers.all_running()
    server.start()
    before = done.count("outage-a")
    wait_for(lambda: done.count("outage-a") > before + 20, 30, "jobs after the restart")
    load.stop()
    wait_for(lambda: set(done.runs) >= load.enqueued, 30, "every job to run")
    wait_for(lambda: Admin(broker).stats().queues[0].pending == 0, 10, "empty queues")
    assert workers.all_running(), workers.errors
    workers.stop()
    check_accounted(broker, ["outage-a", "outage-b"], load, done)
    logged = outage_logs(caplog)
    assert logged, "the outage was not logged"
    assert max(logged.values()) <= 3, logged  # once per outage, not once per try


# -- cluster ----------------------------------------------------------------------------------


@pytest.fixture(params=["partial", "full"])
def outage_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalCluster]:
    """A 3-master cluster whose nodes keep every write (AOF, fsync always). ``partial``:
    healthy nodes serve their slots while one is down (``cluster-require-full-coverage no``);
    ``full``: Redis's default, the whole cluster answers CLUSTERDOWN once a node is lost."""
    coverage = "no" if request.param == "partial" else "yes"
    cluster = start_cluster(
        tmp_path / "cluster",
        masters=3,
        node_timeout_ms=1000,
        persistence=True,
        extra_config=[["appendfsync", "always"], ["cluster-require-full-coverage", coverage]],
    )
    yield cluster
    cluster.stop()


def node_of(cluster: LocalCluster, tag: str) -> int:
    """The index of the node holding hash tag ``tag``'s slot (slots split evenly)."""
    return key_slot(tag.encode()) * len(cluster.nodes) // SLOTS


def queue_on(cluster: LocalCluster, node: int, prefix: str = "rwq") -> str:
    """A queue name whose keys live on ``node``."""
    return next(
        name
        for name in (f"shard{node}-{i}" for i in range(1000))
        if node_of(cluster, f"{prefix}:q:{name}") == node
    )


@pytest.mark.cluster
def test_a_killed_cluster_node_stalls_only_its_queues(
    request: pytest.FixtureRequest,
    outage_cluster: LocalCluster,
    settings: Settings,
    workers: Workers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    cluster = outage_cluster
    here = outage_settings(settings, cluster.url)
    victim = node_of(cluster, "rwq:registry")  # the registry's shard: heartbeats fail too
    queues = [queue_on(cluster, i) for i in range(3)]
    lost_queue = queues[victim]
    healthy = [q for q in queues if q != lost_queue]
    broker = Broker(connect(here), here)
    done = Done()
    for queue in queues:
        workers.start(here, [queue], done)  # a worker on each shard
    workers.start(here, [lost_queue, *healthy], done)  # and one on all three
    load = Load(here, queues)
    wait_for(lambda: all(done.count(q) >= 20 for q in queues), 30, "jobs on every shard")

    cluster.nodes[victim].kill()
    time.sleep(1.0)  # the clients find the node gone
    during = {q: done.count(q) for q in healthy}
    time.sleep(2.0)  # past the heartbeat TTL, and the cluster's node timeout
    partial = "partial" in request.node.callspec.id
    for queue in healthy if partial else ():  # else: CLUSTERDOWN everywhere, all wait
        assert done.count(queue) > during[queue] + 20, f"{queue} stalled with another shard"
    assert workers.all_running(), workers.errors

    cluster.nodes[victim].start()
    cluster.wait_ok()
    after = done.count(lost_queue)
    wait_for(lambda: done.count(lost_queue) > after + 20, 30, "the lost shard's queue to move")
    load.stop()
    wait_for(lambda: set(done.runs) >= load.enqueued, 30, "every job to run")

    def drained() -> bool:
        stats = Admin(broker).stats(queues)
        return all(q.pending == 0 for q in stats.queues)

    wait_for(drained, 20, "empty queues")
    assert workers.all_running(), workers.errors
    workers.stop()
    check_accounted(broker, queues, load, done)
    logged = outage_logs(caplog)
    assert logged, "the outage was not logged"
    assert max(logged.values()) <= 3, logged
