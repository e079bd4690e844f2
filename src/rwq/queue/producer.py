"""Producers: put jobs on queues, now or later, one at a time or in batches."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rwq.queue.broker import Broker
from rwq.queue.job import (
    DEFAULT_PRIORITY,
    JSON,
    Job,
    JobError,
    check_priority,
    encode_payload,
    new_job_id,
)


@dataclass
class JobSpec:
    """A job to enqueue; unset options take the producer's defaults."""

    payload: Any
    priority: int = DEFAULT_PRIORITY
    tenant: str | None = None
    delay: float | None = None
    """Seconds from now before the job may run."""
    at: datetime | float | None = None
    """When the job may run: a datetime or epoch seconds."""
    max_retries: int | None = None
    job_id: str | None = None
    trace_id: str | None = None


class Producer:
    """Enqueues jobs through a :class:`Broker`."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._known_queues: set[str] = set()

    def enqueue(
        self,
        queue: str,
        payload: Any,
        *,
        priority: int = DEFAULT_PRIORITY,
        tenant: str | None = None,
        delay: float | None = None,
        at: datetime | float | None = None,
        max_retries: int | None = None,
        job_id: str | None = None,
        trace_id: str | None = None,
    ) -> Job:
        """Enqueue one job and return it (with its id).

        Raises:
            JobError: the payload is not JSON, too large, or an option is out of range.
        """
        spec = JobSpec(payload, priority, tenant, delay, at, max_retries, job_id, trace_id)
        return self.enqueue_many(queue, [spec])[0]

    def enqueue_many(
        self, queue: str, specs: Iterable[JobSpec | Any], chunk: int = 500
    ) -> list[Job]:
        """Enqueue many jobs in few round trips; plain values are taken as payloads.

        Each chunk of ``chunk`` jobs is one atomic script call. While the server stores one
        chunk the next is encoded (a sender thread), so client and server work overlap. A job
        whose id already exists is not enqueued again (its returned ``state`` is
        ``duplicate``). Every job is validated before any is sent.
        """
        qk = self.broker.queue_keys(queue)
        jobs: list[Job] = []
        blocks: list[list[str]] = []
        for item in specs:
            spec = item if isinstance(item, JobSpec) else JobSpec(item)
            job, block = self._encode(queue, spec)
            jobs.append(job)
            blocks.append(block)
        if not jobs:
            return jobs
        if qk.queue not in self._known_queues:
            self.broker.register_queues([qk.queue])
            self._known_queues.add(qk.queue)
        chunks = [blocks[i : i + chunk] for i in range(0, len(blocks), chunk)]
        if len(chunks) == 1:
            flags = self.broker.enqueue_raw(queue, chunks[0])
        else:
            flags = self._send_overlapped(queue, chunks)
        for job, flag in zip(jobs, flags, strict=True):
            if not flag:
                job.state = "duplicate"
        return jobs

    def _send_overlapped(self, queue: str, chunks: list[list[list[str]]]) -> list[int]:
        """Send chunks in pipelines of a few calls, each in flight while the next is packed."""
        flags: list[int] = []
        group = 8
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rwq-enqueue") as sender:
            inflight = None
            for start in range(0, len(chunks), group):
                pipe = self.broker.client.pipeline(transaction=False)
                for blocks in chunks[start : start + group]:
                    self.broker.enqueue_raw(queue, blocks, client=pipe)
                if inflight is not None:
                    for result in inflight.result():
                        flags.extend(result)
                inflight = sender.submit(pipe.execute)
            if inflight is not None:
                for result in inflight.result():
                    flags.extend(result)
        return flags

    def _encode(self, queue: str, spec: JobSpec) -> tuple[Job, list[str]]:
        settings = self.broker.settings
        priority = check_priority(spec.priority)
        max_retries = settings.max_retries if spec.max_retries is None else spec.max_retries
        if not isinstance(max_retries, int) or max_retries < 0:
            raise JobError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
        if spec.tenant is not None and (not spec.tenant or len(spec.tenant) > 128):
            raise JobError("tenant must be 1-128 characters")
        now = time.time()
        run_at = _run_at(spec, now)
        fixed: dict[str, Any] = {"payload": spec.payload, "max_retries": max_retries,
                                 "created_at": round(now * 1000, 3)}  # fmt: skip
        if spec.trace_id:
            fixed["trace_id"] = spec.trace_id
        try:
            spec_text = JSON.encode(fixed)
        except (TypeError, ValueError) as exc:
            raise JobError(f"payload is not JSON-serialisable: {exc}") from None
        if len(spec_text) > settings.payload_limit:  # ASCII-only JSON: chars == bytes
            encode_payload(spec.payload, settings.payload_limit)  # raises with the exact size
        job = Job(
            id=spec.job_id or new_job_id(),
            queue=queue,
            payload=spec.payload,
            priority=priority,
            tenant=spec.tenant,
            max_retries=max_retries,
            state="scheduled" if run_at else "pending",
            created_at=fixed["created_at"],
            run_at=run_at,
            trace_id=spec.trace_id,
        )
        block = [
            job.id,
            str(priority),
            spec.tenant or "",
            f"{run_at:.0f}" if run_at else "",
            spec_text,
        ]
        return job, block


def _run_at(spec: JobSpec, now: float) -> float | None:
    """The epoch ms at which the job becomes due, or None to run now."""
    if spec.delay is not None and spec.at is not None:
        raise JobError("give either delay or at, not both")
    if spec.delay is not None:
        if spec.delay < 0:
            raise JobError(f"delay must be >= 0 seconds, got {spec.delay}")
        return (now + spec.delay) * 1000 if spec.delay > 0 else None
    if spec.at is not None:
        when = spec.at.timestamp() if isinstance(spec.at, datetime) else float(spec.at)
        return when * 1000 if when > now else None
    return None
