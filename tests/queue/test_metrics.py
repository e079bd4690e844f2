"""The worker's Prometheus endpoint serves real counts."""

from __future__ import annotations

import socket
import urllib.request

import redis

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.queue.worker import Worker, WorkerOptions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fail_odd(job: Job) -> None:
    if job.payload % 2:
        raise ValueError("odd")


def test_metrics_endpoint_counts_outcomes(redis_client: redis.Redis, settings: Settings) -> None:
    broker = Broker(redis_client, settings.replace(max_retries=0))
    Producer(broker).enqueue_many("m", list(range(10)))
    port = _free_port()
    worker = Worker(broker, ["m"], {"m": _fail_odd}, WorkerOptions(metrics_port=port))
    worker.run(max_jobs=10, duration=20)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'rwq_jobs_total{outcome="completed",queue="m"} 5.0' in body
    assert 'rwq_jobs_total{outcome="failed",queue="m"} 5.0' in body
    assert 'rwq_job_duration_seconds_count{queue="m"} 10.0' in body
