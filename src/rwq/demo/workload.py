"""The built-in ``demo`` workload: tenant profiles, a producer thread that enqueues them at a
steady rate, and the handler set ``rwq worker --app rwq.demo.workload:handlers`` runs, which
sleeps and fails as each job's payload asks.

A demo payload is ``{"tenant", "kind", "duration_ms", "fail_rate"}`` and optionally
``permanent_rate``: the share of failures that dead-letter at once (default
:data:`PERMANENT_SHARE`).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rwq.outage import REDIS_FAILURES
from rwq.queue.job import Job
from rwq.queue.producer import JobSpec, Producer
from rwq.queue.worker import Handler, PermanentFailure

log = logging.getLogger(__name__)

QUEUE_PREFIX = "tenant."
PERMANENT_SHARE = 0.1
"""Share of demo failures raised as :class:`PermanentFailure` unless the payload says."""
DURATION_SIGMA = 0.6
"""Spread of the lognormal run time: most jobs near the mean, a long tail of slow ones."""
MAX_DURATION_FACTOR = 8.0
"""No run lasts longer than this many times its mean (keeps worker shutdown short)."""
PRODUCER_TICK = 0.1
"""Seconds between the producer's batches."""


@dataclass(frozen=True)
class TenantProfile:
    """How one synthetic tenant behaves in the demo."""

    name: str
    share: float
    """Fraction of the demo's total enqueue rate."""
    priority: int
    kinds: tuple[str, ...]
    duration_ms: float
    """Mean handler run time."""
    fail_rate: float
    """Probability that one run fails."""
    max_retries: int
    note: str

    @property
    def queue(self) -> str:
        return f"{QUEUE_PREFIX}{self.name}"

    def payload(self, rng: random.Random) -> dict[str, Any]:
        """A payload for one job of this tenant."""
        return {
            "tenant": self.name,
            "kind": rng.choice(self.kinds),
            "duration_ms": self.duration_ms,
            "fail_rate": self.fail_rate,
            "ref": f"{self.name[:3]}-{rng.randrange(100_000):05d}",
        }


PROFILES: tuple[TenantProfile, ...] = (
    TenantProfile(
        name="hooli",
        share=0.1,
        priority=9,
        kinds=("search.index", "search.reindex"),
        duration_ms=25,
        fail_rate=0.01,
        max_retries=2,
        note="premium tier: tiny, fast, rarely failing",
    ),
    TenantProfile(
        name="globex",
        share=0.2,
        priority=7,
        kinds=("payment.capture", "payment.refund"),
        duration_ms=80,
        fail_rate=0.05,
        max_retries=3,
        note="payments with occasional upstream timeouts",
    ),
    TenantProfile(
        name="acme",
        share=0.35,
        priority=5,
        kinds=("invoice.render", "email.send"),
        duration_ms=40,
        fail_rate=0.02,
        max_retries=3,
        note="the biggest tenant, healthy",
    ),
    TenantProfile(
        name="umbrella",
        share=0.2,
        priority=4,
        kinds=("webhook.deliver",),
        duration_ms=120,
        fail_rate=0.08,
        max_retries=3,
        note="webhooks to flaky customer endpoints",
    ),
    TenantProfile(
        name="initech",
        share=0.15,
        priority=3,
        kinds=("report.generate", "export.csv"),
        duration_ms=450,
        fail_rate=0.25,
        max_retries=2,
        note="breaching its SLA: slow, a quarter of runs fail",
    ),
)
"""The demo tenants, highest queue priority first."""

QUEUES: tuple[str, ...] = tuple(p.queue for p in PROFILES)
"""The demo's queues in the order workers should serve them."""

# Transient errors by the first part of a job's kind: (exception type, message).
_TRANSIENT: dict[str, tuple[tuple[type[Exception], str], ...]] = {
    "payment": (
        (TimeoutError, "upstream payment API timed out after 3000 ms"),
        (ConnectionError, "payment gateway returned 503 Service Unavailable"),
        (ValueError, "card declined: insufficient_funds"),
    ),
    "invoice": (
        (ValueError, "invalid invoice total: line items do not add up"),
        (OSError, "template store unavailable: read timed out"),
    ),
    "email": (
        (ConnectionError, "SMTP 421: too many connections from this IP"),
        (TimeoutError, "mail relay did not answer within 10 s"),
    ),
    "webhook": (
        (ConnectionError, "customer endpoint refused the connection"),
        (TimeoutError, "customer endpoint timed out after 5000 ms"),
        (RuntimeError, "customer endpoint answered 500 Internal Server Error"),
    ),
    "report": (
        (TimeoutError, "warehouse query exceeded its 30 s statement timeout"),
        (MemoryError, "report worker ran out of memory building the pivot"),
        (RuntimeError, "deadlock detected while reading ledger snapshot"),
    ),
    "export": (
        (OSError, "object storage upload failed: connection reset by peer"),
        (TimeoutError, "warehouse export did not finish in time"),
    ),
    "search": (
        (ConnectionError, "search cluster rejected the bulk request (429)"),
        (TimeoutError, "index refresh timed out"),
    ),
}
_GENERIC: tuple[tuple[type[Exception], str], ...] = (
    (TimeoutError, "upstream service timed out"),
    (ConnectionError, "connection reset by peer"),
)
_PERMANENT = (
    "schema validation failed: missing required field 'customer_id'",
    "schema validation failed: 'currency' must be an ISO 4217 code",
    "tenant account suspended: job rejected",
    "referenced record was deleted before the job ran",
)


def run_time_ms(mean_ms: float, rng: random.Random) -> float:
    """A lognormal run time whose mean is ``mean_ms``, capped at
    :data:`MAX_DURATION_FACTOR` times the mean."""
    if mean_ms <= 0:
        return 0.0
    mu = math.log(mean_ms) - DURATION_SIGMA**2 / 2
    return min(rng.lognormvariate(mu, DURATION_SIGMA), mean_ms * MAX_DURATION_FACTOR)


class DemoHandler:
    """Sleeps for a job's ``duration_ms`` (lognormal) and fails with its ``fail_rate``.

    Args:
        rng: the randomness (seed one for reproducible runs); shared by handler threads.
        sleep: how to wait, in seconds (tests pass a no-op).
    """

    def __init__(
        self, rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.rng = rng or random.Random()
        self.sleep = sleep
        self._lock = threading.Lock()

    def __call__(self, job: Job) -> dict[str, Any]:
        payload = job.payload if isinstance(job.payload, dict) else {}
        mean = _number(payload.get("duration_ms"), 0.0)
        fail_rate = _number(payload.get("fail_rate"), 0.0)
        permanent_rate = _number(payload.get("permanent_rate"), PERMANENT_SHARE)
        kind = str(payload.get("kind", ""))
        with self._lock:  # one draw sequence per job, whatever the thread interleaving
            ms = run_time_ms(mean, self.rng)
            fails = self.rng.random() < fail_rate
            permanent = fails and self.rng.random() < permanent_rate
            error: Exception | None = None
            if permanent:
                error = PermanentFailure(self.rng.choice(_PERMANENT))
            elif fails:
                exc_type, message = self.rng.choice(_TRANSIENT.get(kind.split(".")[0], _GENERIC))
                error = exc_type(message)
                if isinstance(error, TimeoutError):
                    ms = max(ms, mean * 2)  # a timeout waits longer than a normal run
        self.sleep(ms / 1000)
        if error is not None:
            raise error
        return {"kind": kind, "took_ms": round(ms, 1)}


def _number(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


class SyntheticProducer(threading.Thread):
    """Enqueues every profile's share of ``rate`` jobs per second until :meth:`stop`."""

    def __init__(
        self,
        producer: Producer,
        rate: float,
        profiles: Sequence[TenantProfile] = PROFILES,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name="rwq-demo-producer", daemon=True)
        self.producer = producer
        self.rate = rate
        self.profiles = list(profiles)
        self.rng = rng or random.Random()
        self.enqueued = 0
        self.error = ""
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        owed = [0.0] * len(self.profiles)
        last = time.monotonic()
        while not self._stop_event.wait(PRODUCER_TICK):
            now = time.monotonic()
            elapsed, last = now - last, now
            for i, profile in enumerate(self.profiles):
                owed[i] += self.rate * profile.share * elapsed
                count = int(owed[i])
                if count == 0:
                    continue
                owed[i] -= count
                try:
                    self.produce(profile, count)
                except REDIS_FAILURES as exc:
                    self.error = f"producer: {exc}"
                    log.debug("demo producer: %s", exc)  # shown in the view, not on stderr

    def produce(self, profile: TenantProfile, count: int) -> None:
        """Enqueue ``count`` jobs of ``profile`` in one call."""
        specs = [
            JobSpec(
                profile.payload(self.rng),
                priority=profile.priority,
                tenant=profile.name,
                max_retries=profile.max_retries,
            )
            for _ in range(count)
        ]
        self.producer.enqueue_many(profile.queue, specs)
        self.enqueued += count
        self.error = ""


handlers: dict[str, Handler] = {"*": DemoHandler()}
"""The demo's workers' handler set (``--app rwq.demo.workload:handlers``): one for every queue."""
