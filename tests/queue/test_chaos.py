"""Chaos: worker processes killed with SIGKILL, Redis stopped and restarted mid-run.

Workers are real subprocesses (``chaos_worker.py``). Whether every job ended exactly once is
read from the queue's event stream, which the scripts append to atomically with each
transition.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.valkey.standalone import StandaloneServer

pytestmark = pytest.mark.chaos

WORKER_SCRIPT = Path(__file__).with_name("chaos_worker.py")
WaitUntil = Callable[..., Any]
StartProcess = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[StartProcess]:
    """Start ``chaos_worker.py`` processes (``start_process(url, queue, name, prefetch)``);
    any still running at teardown is killed."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(url: str, queue: str, name: str, prefetch: int = 0) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), url, queue, name, str(prefetch)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def chaos_broker(client: redis.Redis, url: str, tmp_path: Path) -> Broker:
    settings = Settings(redis_url=url, state_dir=tmp_path, persistence=False, events_maxlen=100_000)
    return Broker(client, settings)


def outcomes(broker: Broker, queue: str) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """How often each job id was completed, dead-lettered and requeued by the reaper."""
    completed: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    for _, fields in broker.client.xrange(broker.queue_keys(queue).events):
        if fields["type"] == "job.completed":
            completed[fields["job_id"]] += 1
        elif fields["type"] == "job.dead_lettered":
            dead[fields["job_id"]] += 1
        elif fields["type"] == "job.requeued" and fields["reason"] == "worker_lost":
            lost[fields["job_id"]] += 1
    return completed, dead, lost


def logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in tmp_path.glob("*.log"))


def test_a_killed_worker_loses_no_job(
    redis_client: redis.Redis,
    valkey_url: str,
    tmp_path: Path,
    start_process: StartProcess,
    wait_until: WaitUntil,
) -> None:
    broker = chaos_broker(redis_client, valkey_url, tmp_path)
    admin = Admin(broker)
    ids = {job.id for job in Producer(broker).enqueue_many("chaos", range(200))}
    # The victim holds 5 jobs at a time (prefetch), so it dies holding some.
    victim = start_process(valkey_url, "chaos", "victim", 4)
    survivor = start_process(valkey_url, "chaos", "survivor")

    def victim_busy() -> bool:
        stats = admin.stats(["chaos"]).queues[0]
        held = [w for w in admin.workers() if w.id == "victim" and w.current_jobs]
        return stats.completed_total >= 40 and bool(held)

    wait_until(victim_busy, timeout=30, what="the victim to be mid-run")
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    def all_done() -> bool:
        q = admin.stats(["chaos"]).queues[0]
        return q.completed_total + q.dead == 200 and q.pending + q.scheduled + q.processing == 0

    wait_until(all_done, timeout=60, what=f"every job to finish\n{logs(tmp_path)}")
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=10) == 0, logs(tmp_path)

    completed, dead, lost = outcomes(broker, "chaos")
    assert set(completed) | set(dead) == ids  # none lost
    assert not set(completed) & set(dead)
    assert set(completed.values()) == {1}, "a job completed twice"
    assert set(dead.values()) <= {1}
    assert lost, "the reaper requeued none of the victim's jobs"
    stats = admin.stats(["chaos"]).queues[0]
    assert (stats.enqueued_total, stats.completed_total, stats.dead) == (
        200,
        len(completed),
        len(dead),
    )
    assert [w.id for w in admin.workers()] == []  # the victim was reaped, the survivor left


def test_a_worker_rides_out_a_redis_restart(
    make_server: Callable[..., StandaloneServer],
    tmp_path: Path,
    start_process: StartProcess,
    wait_until: WaitUntil,
) -> None:
    server = make_server(persistence=True)
    client = server.client(decode_responses=True)
    broker = chaos_broker(client, server.url, tmp_path)
    admin = Admin(broker)
    ids = {job.id for job in Producer(broker).enqueue_many("chaos", range(100))}
    worker = start_process(server.url, "chaos", "rider")

    def completed() -> int:
        try:
            return admin.stats(["chaos"]).queues[0].completed_total
        except redis.ConnectionError:
            return 0

    wait_until(lambda: completed() >= 20, timeout=30, what=f"progress\n{logs(tmp_path)}")
    server.stop()  # graceful: the data is saved
    # Down for longer than the heartbeat TTL (1.5 s) and the client's own retries: the
    # worker's lease expires, and it must notice the outage and come back by itself.
    time.sleep(2.5)
    server.start()  # same port, same data directory
    wait_until(
        lambda: completed() == 100, timeout=60, what=f"every job to finish\n{logs(tmp_path)}"
    )
    assert worker.poll() is None, "the worker died with Redis"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0, logs(tmp_path)

    done, dead, _ = outcomes(broker, "chaos")
    assert set(done) == ids
    assert set(done.values()) == {1}, "a job completed twice"
    assert not dead
    stats = admin.stats(["chaos"]).queues[0]
    assert (stats.pending, stats.scheduled, stats.processing, stats.dead) == (0, 0, 0, 0)
    client.close()
