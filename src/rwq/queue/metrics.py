"""Prometheus metrics of one worker process, served on ``--metrics-port``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class WorkerMetrics:
    """The worker's counters; each worker gets its own registry (several may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "rwq_jobs_total",
            "Jobs finished by this worker, by queue and outcome",
            ["queue", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "rwq_job_duration_seconds",
            "Handler run time",
            ["queue"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.inflight = Gauge("rwq_jobs_inflight", "Jobs running now", registry=self.registry)
        self.breaker_open = Gauge(
            "rwq_breaker_open",
            "1 while the queue's circuit breaker is open or half-open",
            ["queue"],
            registry=self.registry,
        )
        self.timeouts = Counter(
            "rwq_timeouts_total",
            "Runs stopped at their timeout, by queue",
            ["queue"],
            registry=self.registry,
        )
        self.abandoned = Gauge(
            "rwq_handlers_abandoned",
            "Handlers abandoned at their timeout that still run (thread isolation)",
            registry=self.registry,
        )
        self.stale_acks = Counter(
            "rwq_stale_acks_total",
            "Results dropped because the job was no longer held (reaped)",
            registry=self.registry,
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
