"""Recording the outcomes of a worker's runs: completions and failures (retried with backoff,
or dead-lettered) written in one round trip, and what the server applied counted."""

from __future__ import annotations

import logging
import random
from typing import Any

from rwq.outage import OUTAGE_ERRORS
from rwq.queue.broker import Broker, Done, Failure
from rwq.queue.handler import Outcome
from rwq.queue.metrics import WorkerMetrics

log = logging.getLogger("rwq.queue.worker")  # the worker's lines: one name to configure


def backoff_ms(attempt: int, base: float, cap: float) -> int:
    """Exponential backoff with jitter: half the step fixed, half random."""
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    return int((step / 2 + random.random() * step / 2) * 1000)


class OutcomeRecorder:
    """Writes one worker's outcomes and counts the completions and failures applied."""

    def __init__(self, broker: Broker, worker_id: str, metrics: WorkerMetrics) -> None:
        self._broker = broker
        self._worker_id = worker_id
        self._metrics = metrics
        self.processed = 0
        self.failed = 0
        self._unsure: set[str] = set()
        """Queues whose results failed to record: they may have been, with only the reply
        lost."""

    def write(self, outcomes: list[Outcome]) -> None:
        """Record ``outcomes`` in one round trip.

        Raises:
            redis errors of an outage: nothing is known to be recorded (some may be).
        """
        settings = self._broker.settings
        batches: dict[str, tuple[list[Done], list[Failure]]] = {}
        for o in outcomes:
            done, failures = batches.setdefault(o.queue, ([], []))
            # With its attempt: a late result of an earlier attempt is refused (as stale).
            if o.ok:
                ttl = o.job.result_ttl
                done.append((o.job.id, o.duration_ms, o.job.attempts, o.result, o.result_error,
                             -1 if ttl is None else round(ttl * 1000)))  # fmt: skip
            else:
                delay = backoff_ms(o.job.attempts, settings.backoff_base, settings.backoff_max)
                failures.append(
                    Failure(o.job.id, o.duration_ms, o.error, o.traceback, delay, o.permanent,
                            o.job.attempts, o.timeout, o.stopped)
                )  # fmt: skip
        order: list[tuple[str, str]] = []

        def build(pipe: Any) -> None:
            order.clear()
            for qname, (done, failures) in batches.items():
                if done:
                    self._broker.complete(qname, self._worker_id, done, client=pipe)
                    order.append((qname, "completed"))
                if failures:
                    self._broker.fail(qname, self._worker_id, failures, client=pipe)
                    order.append((qname, "failed"))

        try:
            results = self._broker.execute(build)
        except OUTAGE_ERRORS:
            self._unsure.update(batches)
            raise
        for (qname, kind), flags in zip(order, results, strict=True):
            applied = sum(1 for f in flags if f)
            stale = len(flags) - applied
            if kind == "completed":
                self.processed += applied
            else:
                self.failed += applied
            self._metrics.jobs.labels(qname, kind).inc(applied)
            if stale:
                self._metrics.stale_acks.inc(stale)
                if qname in self._unsure:
                    log.info(
                        "%d %s result(s) on %s were recorded already: the reply to the "
                        "previous attempt was lost", stale, kind, qname,
                    )  # fmt: skip
                else:
                    log.warning(
                        "%d %s result(s) on %s were refused: the job was no longer held by "
                        "this worker (its lease expired and it was reaped; it may run again)",
                        stale, kind, qname,
                    )  # fmt: skip
        if self._unsure:
            self._unsure.difference_update(batches)
