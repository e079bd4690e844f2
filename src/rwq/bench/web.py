"""``rwq bench web``: the HTTP admin API's latency, measured against a real server on
127.0.0.1 (uvicorn on a thread of this process, over a throwaway Valkey unless a Redis URL is
configured): queue stats and a job lookup by id, each request authenticated, checked and
audited as in production. The live stream's figures come with the browser dashboard."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rwq.bench.queue import bench_target
from rwq.config import Settings
from rwq.connection import connect
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.web.server import WebServer
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


def _figures(took: list[float]) -> dict[str, float]:
    ordered = sorted(took)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "max_ms": round(ordered[-1], 3),
        "requests": len(ordered),
    }


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
                WebServer(target, broker, port=0) as server,
                httpx.Client(
                    base_url=server.url, headers={"Authorization": f"Bearer {secret}"}
                ) as client,
            ):
                _timed(client, ["/api/v1/queues"] * WARMUP)
                stats = _timed(client, ["/api/v1/queues"] * requests)
                step = max(1, len(ids) // requests)
                lookups = [f"/api/v1/jobs/{ids[(i * step) % len(ids)]}" for i in range(requests)]
                jobs = _timed(client, lookups)
        finally:
            tokens.revoke("bench")
            for q in range(QUEUES):
                broker.purge(f"bench-{q}", "pending")
        result: dict[str, Any] = {
            "server": server_kind,
            "queues": QUEUES,
            "jobs": len(ids),
            "target_p99_ms": TARGET_P99_MS,
            "stats": _figures(stats),
            "job_lookup": _figures(jobs),
        }
        result["within_target"] = all(
            result[k]["p99_ms"] < TARGET_P99_MS for k in ("stats", "job_lookup")
        )
        return result
