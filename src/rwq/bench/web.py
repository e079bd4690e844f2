"""``rwq bench web``: the HTTP admin API's latency, measured against a real server on
127.0.0.1 (``rwq web`` in a process of its own, over a throwaway Valkey unless a Redis URL is
configured): queue stats and a job lookup by id, each request authenticated, checked and
audited as in production. The live stream's half is :mod:`rwq.bench.web_stream`."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from rwq.bench.queue import bench_target
from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.web.tokens import TokenStore

TARGET_P99_MS = 10.0
QUEUES = 10
JOBS_PER_QUEUE = 100
WARMUP = 50


def _timed(client: httpx.Client, paths: list[str]) -> list[float]:
    """Each request's round trip in milliseconds; every answer must be a 200."""
    took: list[float] = []
    for path in paths:
        start = time.perf_counter()
        response = client.get(path)
        took.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return took


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` used so far (0 where ``/proc`` is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(client: httpx.Client, paths: list[str], pid: int) -> dict[str, float]:
    """The latency figures of ``paths`` and the server's CPU time per request: what a
    request costs whatever else the machine runs."""
    cpu = _process_cpu(pid)
    figures = _figures(_timed(client, paths))
    figures["server_cpu_ms_per_request"] = round((_process_cpu(pid) - cpu) * 1000 / len(paths), 3)
    return figures


def _figures(took: list[float]) -> dict[str, float]:
    ordered = sorted(took)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "max_ms": round(ordered[-1], 3),
        "requests": len(ordered),
    }


@contextlib.contextmanager
def web_process(
    settings: Settings, args: Sequence[str] = ("--no-plugins",)
) -> Iterator[tuple[str, int]]:
    """``rwq web ARGS`` on a free port of 127.0.0.1 in a process of its own; its URL and pid
    once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {
        "RWQ_REDIS_URL": str(settings.redis_url),
        "RWQ_PREFIX": settings.prefix,
        "RWQ_STATE_DIR": str(settings.state_dir),
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed below, read if it fails to start
    process = subprocess.Popen(
        [sys.executable, "-m", "rwq", "web", *args, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    said = log.read()[-2000:].decode("utf-8", "replace")
                    raise RuntimeError(f"rwq web did not start:\n{said}") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def run_web_bench(settings: Settings, *, requests: int = 2000) -> dict[str, Any]:
    """Measure the API and return the figures."""
    with bench_target(settings) as (target, server_kind), tempfile.TemporaryDirectory() as tmp:
        target = target.replace(state_dir=Path(tmp))
        broker = Broker(connect(target), target)
        producer = Producer(broker)
        ids = [
            producer.enqueue(f"bench-{q}", {"n": n}).id
            for q in range(QUEUES)
            for n in range(JOBS_PER_QUEUE)
        ]
        tokens = TokenStore(broker.client, broker.keys)
        _, secret = tokens.create("bench", ["observer", "admin.queue.peek"])
        try:
            with (
                web_process(target) as (url, pid),
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client,
            ):
                _timed(client, ["/api/v1/queues"] * WARMUP)
                stats = _measured(client, ["/api/v1/queues"] * requests, pid)
                step = max(1, len(ids) // requests)
                lookups = [f"/api/v1/jobs/{ids[(i * step) % len(ids)]}" for i in range(requests)]
                jobs = _measured(client, lookups, pid)
        finally:
            tokens.revoke("bench")
            for q in range(QUEUES):
                broker.purge(f"bench-{q}", "pending")
        result: dict[str, Any] = {
            "server": server_kind,
            "queues": QUEUES,
            "jobs": len(ids),
            "target_p99_ms": TARGET_P99_MS,
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "stats": stats,
            "job_lookup": jobs,
        }
        result["within_target"] = all(
            result[k]["p99_ms"] < TARGET_P99_MS for k in ("stats", "job_lookup")
        )
        return result
