"""``rwq bench queue``: enqueue, batched enqueue, processing and latency of the queue.

Runs on a throwaway Valkey (unix socket, no persistence) unless a Redis URL is configured; on
a given server it works under a private key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rwq.config import FSYNC_MODES, Settings
from rwq.connection import connect
from rwq.queue.broker import Broker
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.queue.timeouts import Isolation
from rwq.queue.worker import Handler, Worker, WorkerOptions

ASYNC_CONCURRENCY = 32
"""Coroutines at once in ``process_async_jobs_per_s`` (what an async worker would run)."""


def noop(job: Job) -> None:
    """The benchmark's handler: does nothing."""


async def noop_async(job: Job) -> None:
    """The benchmark's async handler: does nothing (awaited on the worker's event loop)."""


@contextlib.contextmanager
def bench_target(settings: Settings, fsync: str | None = None) -> Iterator[tuple[Settings, str]]:
    """Settings pointing at the server to measure, under a private prefix: the configured one,
    or a throwaway Valkey without persistence, or with an append-only file synced as ``fsync``
    says (``everysec`` or ``always``)."""
    prefix = f"rwqbench{os.getpid()}"
    if settings.redis_url:
        yield settings.replace(prefix=prefix), "configured"
        return
    from rwq.valkey.standalone import StandaloneServer

    with tempfile.TemporaryDirectory(prefix="rwq-bench-") as tmp:
        sock = Path(tmp) / "valkey.sock"
        server = StandaloneServer(
            Path(tmp) / "data",
            persistence=fsync is not None,
            fsync=fsync or "everysec",
            extra_config=[("unixsocket", str(sock)), ("unixsocketperm", "700")],
        )
        server.start()
        try:
            yield settings.replace(prefix=prefix, redis_url=f"unix://{sock}"), "throwaway valkey"
        finally:
            server.stop()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Progress = Callable[[str, float], None]
"""``(phase, fraction done)``: what a bench is doing, for a progress bar."""


def run_queue_bench(
    settings: Settings, *, jobs: int = 50_000, progress: Progress | None = None
) -> dict[str, Any]:
    """Measure the queue and return the figures; ``progress`` hears each phase start."""
    report = progress or (lambda phase, done: None)
    report("starting a server", 0.0)
    with bench_target(settings) as (target, server_kind):
        client = connect(target)
        broker = Broker(client, target)
        producer = Producer(broker)
        try:
            result: dict[str, Any] = {"server": server_kind, "jobs": jobs}
            report("round trips", 0.05)
            result.update(_round_trip(client))
            report("enqueue one by one", 0.1)
            single = min(jobs, 10_000)
            started = time.perf_counter()
            for i in range(single):
                producer.enqueue("bench.single", {"i": i})
            result["enqueue_jobs_per_s"] = round(single / (time.perf_counter() - started))

            report("enqueue in batches", 0.35)
            payloads = [{"i": i} for i in range(jobs)]
            started = time.perf_counter()
            producer.enqueue_many("bench.batch", payloads)
            result["enqueue_batch_jobs_per_s"] = round(jobs / (time.perf_counter() - started))

            report("process", 0.5)
            result["process_jobs_per_s"] = _process(broker, "bench.batch", jobs)
            report("process async", 0.55)
            producer.enqueue_many("bench.async", payloads)
            result["process_async_jobs_per_s"] = _process(
                broker, "bench.async", jobs, handler=noop_async, concurrency=ASYNC_CONCURRENCY
            )
            # Every job with a timeout: in thread mode each runs in a thread the loop can give
            # up on; under process isolation in a child that can be killed (the hard timeout).
            bounded = min(jobs, 10_000)
            report("process with timeouts", 0.6)
            producer.enqueue_many("bench.timeout", payloads[:bounded])
            result["process_timeout_jobs_per_s"] = _process(
                broker, "bench.timeout", bounded, timeout=60.0
            )
            report("process isolated", 0.7)
            producer.enqueue_many("bench.isolated", payloads[:bounded])
            result["process_isolated_jobs_per_s"] = _process(
                broker, "bench.isolated", bounded, timeout=60.0, isolation="process"
            )
            report("latency", 0.8)
            result.update(_latency(target, broker, producer))
        finally:
            _cleanup(client, target.prefix)
            client.close()
    if not settings.redis_url:  # a configured server's persistence is its own
        for fsync in FSYNC_MODES:
            report(f"durability: appendfsync {fsync}", 0.85 if fsync == "everysec" else 0.92)
            result[f"fsync_{fsync}"] = _durability(settings, fsync, jobs)
    report("done", 1.0)
    return result


def _durability(settings: Settings, fsync: str, jobs: int) -> dict[str, int]:
    """Enqueue and process figures on a throwaway server writing an append-only file synced as
    ``fsync`` says (on the bench's temporary directory's disk), fewer jobs than the main run."""
    single, batch = min(jobs, 2_000), min(jobs, 10_000)
    with bench_target(settings, fsync) as (target, _):
        client = connect(target)
        broker = Broker(client, target)
        producer = Producer(broker)
        try:
            started = time.perf_counter()
            for i in range(single):
                producer.enqueue("bench.single", {"i": i})
            enqueue = round(single / (time.perf_counter() - started))
            payloads = [{"i": i} for i in range(batch)]
            started = time.perf_counter()
            producer.enqueue_many("bench.batch", payloads)
            enqueue_batch = round(batch / (time.perf_counter() - started))
            processed = _process(broker, "bench.batch", batch)
        finally:
            client.close()
    return {
        "enqueue_jobs_per_s": enqueue,
        "enqueue_batch_jobs_per_s": enqueue_batch,
        "process_jobs_per_s": processed,
    }


def _process(broker: Broker, queue: str, jobs: int, handler: Handler = noop, **options: Any) -> int:
    """No-op jobs per second through one worker (``options`` for its :class:`WorkerOptions`):
    from its start (under process isolation: from when its handler processes are ready) until
    the ``jobs``-th result is recorded (watched from another thread, so shutdown is not
    counted)."""
    worker = Worker(broker, [queue], {"*": handler}, WorkerOptions(prefetch=100, **options))
    counters = broker.keys.queue(queue).counters
    started = time.perf_counter()
    runner = threading.Thread(target=worker.run, kwargs={"max_jobs": jobs}, daemon=True)
    runner.start()
    if worker.isolation is Isolation.PROCESS:  # it registers once its children are ready
        while not broker.client.hexists(broker.keys.workers, worker.id) and runner.is_alive():
            time.sleep(0.005)
        started = time.perf_counter()
    while int(broker.client.hget(counters, "processed") or 0) < jobs and runner.is_alive():
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    runner.join()
    return round(worker.processed / elapsed)


def _round_trip(client: Any) -> dict[str, Any]:
    samples = []
    for _ in range(2000):
        t = time.perf_counter()
        client.ping()
        samples.append((time.perf_counter() - t) * 1e6)
    return {
        "round_trip_p50_us": round(statistics.median(samples), 1),
        "round_trips_per_s": round(1e6 / statistics.mean(samples)),
    }


def _latency(
    settings: Settings, broker: Broker, producer: Producer, rate: int = 1000, seconds: float = 3.0
) -> dict[str, Any]:
    """Enqueue→start latency at ``rate`` jobs/s with a worker in its own process."""
    queue = "bench.latency"
    env = {**os.environ, "RWQ_REDIS_URL": str(settings.redis_url), "RWQ_PREFIX": settings.prefix}
    worker = subprocess.Popen(
        [sys.executable, "-m", "rwq", "worker", "-q", queue, "--app", "rwq.bench.queue:noop",
         "--concurrency", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_worker(broker)
        total = int(rate * seconds)
        started = time.perf_counter()
        for i in range(total):
            due = started + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            producer.enqueue(queue, {"i": i})
        deadline = time.monotonic() + 30
        events = broker.keys.queue(queue).events
        waits: list[float] = []
        while time.monotonic() < deadline:
            waits = [
                float(fields["wait_ms"])
                for _, fields in broker.client.xrange(events)
                if fields.get("type") == "job.started"
            ]
            if len(waits) >= total:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
    if not waits:
        return {"latency_error": "no job started within 30 s"}
    return {
        "latency_rate_jobs_per_s": rate,
        "latency_samples": len(waits),
        "latency_p50_ms": round(_percentile(waits, 0.50), 3),
        "latency_p99_ms": round(_percentile(waits, 0.99), 3),
        "latency_max_ms": round(max(waits), 3),
    }


def _wait_for_worker(broker: Broker, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.client.hlen(broker.keys.workers):
            time.sleep(0.2)  # let it subscribe before the first job
            return
        time.sleep(0.05)
    raise RuntimeError("benchmark worker did not start")


def _cleanup(client: Any, prefix: str) -> None:
    for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
        client.delete(key)
