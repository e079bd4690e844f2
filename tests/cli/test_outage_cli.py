"""The command line during an outage: a producer fails with one line naming the server, and
``rwq reaper`` hands back the jobs of dead workers when no worker runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.cluster import key_slot

from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.valkey.cluster import SLOTS, LocalCluster
from rwq.valkey.standalone import StandaloneServer


def run_rwq(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "state"), "RWQ_REDIS_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "rwq", *args], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=120,
    )  # fmt: skip


@pytest.mark.cluster
def test_enqueue_on_a_dead_shard_fails_in_one_line_naming_the_server(
    local_cluster: LocalCluster, cluster_client: object, tmp_path: Path
) -> None:
    node = 1
    queue = next(
        f"dead{i}"
        for i in range(1000)
        if key_slot(f"rwq:q:dead{i}".encode()) * len(local_cluster.nodes) // SLOTS == node
    )
    local_cluster.nodes[node].kill()
    try:
        done = run_rwq(tmp_path, local_cluster.url, "enqueue", queue, "{}")
    finally:
        local_cluster.nodes[node].start()
        local_cluster.wait_ok()
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # never a traceback
    assert lines[0].startswith("error: Redis at redis+cluster://127.0.0.1:")
    assert "is unavailable" in lines[0] and "redis_retries" in lines[0]


def test_enqueue_to_a_stopped_server_fails_in_one_line(
    tmp_path: Path, make_server: Callable[..., StandaloneServer]
) -> None:
    server = make_server()
    url = server.url
    server.kill()
    done = run_rwq(tmp_path, url, "enqueue", "q", "{}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot reach Redis at {url}: Error 111 connecting to 127.0.0.1:{server.port}. "
        "Connection refused; check --redis-url / RWQ_REDIS_URL"
    ]


def test_the_reaper_command_hands_back_the_jobs_of_a_dead_worker(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    broker = Broker(connect(settings), settings)
    job = Producer(broker).enqueue("mail", {"to": "a"})
    assert [j.id for j in broker.fetch("mail", "ghost", 1).jobs] == [job.id]
    info = {"id": "ghost", "host": "h", "pid": 1, "queues": ["mail"], "concurrency": 1}
    redis_client.hset(broker.keys.workers, "ghost", json.dumps(info))  # no heartbeat: dead
    done = run_rwq(tmp_path, settings.redis_url or "", "reaper", "--duration", "1s")
    assert done.returncode == 0, done.stderr
    assert "reaped 1 dead worker(s) (ghost): 1 job(s) requeued, 0 dead-lettered" in done.stdout
    stats = Admin(broker).stats(["mail"]).queues[0]
    assert (stats.pending, stats.processing) == (1, 0)
    assert not redis_client.hexists(broker.keys.workers, "ghost")


def test_a_worker_started_during_an_outage_starts_when_redis_is_back(
    tmp_path: Path, make_server: Callable[..., StandaloneServer], settings: Settings
) -> None:
    server = make_server()
    server.kill()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "state"), "RWQ_REDIS_URL": server.url}
    (tmp_path / "handlers.py").write_text("def handle(job):\n    return None\n")
    worker = subprocess.Popen(
        [sys.executable, "-m", "rwq", "worker", "-q", "mail", "--app", "handlers:handle",
         "--max-jobs", "1"],
        env={**env, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None
        line = worker.stderr.readline()  # waits, saying so once
        assert "Redis unavailable" in line and server.url in line, line
        server.start()
        here = settings.replace(redis_url=server.url)
        Producer(Broker(connect(here), here)).enqueue("mail", {})
        assert worker.wait(60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
