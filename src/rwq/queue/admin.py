"""Admin operations: stats, peek, dead letters, requeue, purge, pause/resume, workers.

The CLI (``rwq admin``), the TUI and the plugin host API all call these; destructive ones
refuse in read-only mode and report how many jobs they touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from rwq.errors import RwqError
from rwq.outage import OUTAGE_ERRORS
from rwq.queue.broker import Broker
from rwq.queue.cancel import Cancellation, cancel_job
from rwq.queue.handle import find_job
from rwq.queue.job import Job
from rwq.queue.rate_limits import (
    RateLimit,
    clear_rate_limit,
    parse_rate_limit,
    rate_limit_of,
    starts_in_window,
    store_rate_limit,
)

PEEK_TARGETS = ("pending", "scheduled", "dead", "completed", "processing")
PURGE_TARGETS = ("pending", "scheduled", "dead", "completed")
PROGRESS_FIELDS = ("attempts", "progress", "progress_message", "progress_attempt")
"""The fields of a job's hash that say how far its running handler got."""


class AdminError(RwqError):
    """An admin operation was refused or given bad arguments."""


class UnknownQueue(AdminError):
    def __init__(self, queue: str, known: Sequence[str]) -> None:
        self.queue = queue
        listed = ", ".join(known) if known else "none yet"
        super().__init__(f"unknown queue {queue!r} (known queues: {listed})")


class ReadOnlyMode(AdminError):
    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(f"{operation} refused: rwq is in read-only mode")


@dataclass(frozen=True)
class QueueStats:
    queue: str
    pending: int
    processing: int
    scheduled: int
    dead: int
    completed_total: int
    failed_total: int
    retried_total: int
    dead_total: int
    enqueued_total: int
    paused: bool
    oldest_pending_age_s: float | None
    throughput_1m: int
    """Jobs completed in the last 60 seconds."""
    failed_1m: int
    rate_limit: str | None = None
    """The queue's rate limit (``100/1m``), None: none."""
    rate_limit_source: str | None = None
    """Where the limit comes from: ``stored`` (``rwq admin rate-limit``) or ``setting``."""
    rate_used: int | None = None
    """Jobs started in the limit's current window."""


@dataclass(frozen=True)
class Stats:
    queues: list[QueueStats]
    workers: int
    taken_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "queues": [dict(vars(q)) for q in self.queues],  # flat: no deep copy of asdict
            "workers": self.workers,
            "taken_at": self.taken_at,
        }


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    state: str
    alive: bool
    last_heartbeat: float | None
    """Epoch ms of the last heartbeat (None once its lease expired)."""
    processed: int
    failed: int
    current_jobs: list[str] = field(default_factory=list)
    current_progress: dict[str, str] = field(default_factory=dict)
    """Job id to its progress for people (``40% loading``), for the current jobs that
    reported any (``job.progress()``)."""


@dataclass(frozen=True)
class DeadPage:
    total: int
    """How many dead letters match the filters."""
    jobs: list[Job]


class Admin:
    """Admin operations over a :class:`Broker`."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.client = broker.client

    def _check_queue(self, queue: str) -> str:
        known = self.broker.queues()
        if queue not in known:
            raise UnknownQueue(queue, known)
        return queue

    def _check_writable(self, operation: str) -> None:
        if self.broker.settings.read_only:
            raise ReadOnlyMode(operation)

    # -- reading -----------------------------------------------------------------------------

    def stats(self, queues: Sequence[str] | None = None) -> Stats:
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(self.broker.keys.queues)
        pipe.hkeys(self.broker.keys.workers)
        registered, worker_ids = pipe.execute()  # one round trip for both registries
        known = sorted(registered)
        if queues:
            unknown = [q for q in queues if q not in registered]
            if unknown:
                raise UnknownQueue(unknown[0], known)
        names = list(queues) if queues else known

        def build(pipe: Any) -> None:
            for name in names:
                qk = self.broker.queue_keys(name)
                self.broker.scripts.stats(keys=[qk.tag], args=worker_ids, client=pipe)
                pipe.get(qk.rate_limit)

        replies = self.broker.execute(build) if names else []
        rows, stored = replies[::2], replies[1::2]
        out = []
        for name, row, stored_rate in zip(names, rows, stored, strict=True):
            pending, scheduled, dead, processing, paused, oldest, now, done, failed, flat = row
            counters = dict(zip(flat[::2], (int(v) for v in flat[1::2]), strict=True))
            age = (float(now) - float(oldest)) / 1000 if oldest else None
            out.append(
                QueueStats(
                    queue=name,
                    pending=int(pending),
                    processing=int(processing),
                    scheduled=int(scheduled),
                    dead=int(dead),
                    completed_total=counters.get("processed", 0),
                    failed_total=counters.get("failed", 0),
                    retried_total=counters.get("retried", 0),
                    dead_total=counters.get("dead", 0),
                    enqueued_total=counters.get("enqueued", 0),
                    paused=bool(paused),
                    oldest_pending_age_s=round(max(age, 0.0), 3) if age is not None else None,
                    throughput_1m=int(done),
                    failed_1m=int(failed),
                    **_rate_fields(self.broker, name, stored_rate, float(now)),
                )
            )
        return Stats(out, len(worker_ids), time.time())

    def lost_workers(self) -> list[str]:
        """Registered workers whose heartbeat expired, not reaped yet: dead, or cut off from
        Redis (an outage) for longer than ``heartbeat_ttl``."""
        keys = self.broker.keys
        ids = sorted(self.client.hkeys(keys.workers))
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for worker_id in ids:
            pipe.exists(keys.heartbeat(worker_id))
        return [w for w, alive in zip(ids, pipe.execute(), strict=True) if not alive]

    def throughput(self, queue: str, seconds: int = 60) -> tuple[list[int], list[int]]:
        """Completed and failed counts per second for the last ``seconds``, oldest first."""
        if not 1 <= seconds <= 3600:
            raise AdminError(f"seconds must be 1-3600, got {seconds}")
        qk = self.broker.queue_keys(self._check_queue(queue))
        raw = self.broker.scripts.throughput(keys=[qk.tag], args=[seconds])
        values = [int(v) for v in raw[1:]]
        return values[:seconds], values[seconds:]

    def peek(self, queue: str, n: int = 10, target: str = "pending") -> list[Job]:
        """The next ``n`` jobs of ``target`` (pending in run order; dead newest first)."""
        if target not in PEEK_TARGETS:
            raise AdminError(f"target must be one of {', '.join(PEEK_TARGETS)}, got {target!r}")
        if n < 1:
            raise AdminError(f"n must be at least 1, got {n}")
        qk = self.broker.queue_keys(self._check_queue(queue))
        if target == "completed":
            rows = self.client.lrange(qk.completed, 0, n - 1)
            return [Job.from_fields(json.loads(raw), queue=queue) for raw in rows]
        if target == "processing":
            ids: list[str] = []
            for worker_id in self.client.hkeys(self.broker.keys.workers):
                ids.extend(self.client.zrange(qk.processing(worker_id), 0, n - 1))
            ids = ids[:n]
        elif target == "dead":
            ids = self.client.zrevrange(qk.dead, 0, n - 1)
        else:
            ids = self.client.zrange(getattr(qk, target), 0, n - 1)
        return self._load(queue, ids)

    def job(self, queue: str, job_id: str) -> Job | None:
        jobs = self._load(self._check_queue(queue), [job_id])
        return jobs[0] if jobs else None

    def find_job(self, job_id: str, queue: str | None = None) -> Job | None:
        """The job ``job_id`` as stored, found on ``queue`` or, without one, on the first
        registered queue (by name) that has it; None if none has (never enqueued, deleted,
        or completed longer ago than its result is kept)."""
        names = [self._check_queue(queue)] if queue else self.broker.queues()
        return find_job(self.broker, job_id, names)

    def _load(self, queue: str, ids: Sequence[str]) -> list[Job]:
        if not ids:
            return []
        qk = self.broker.queue_keys(queue)
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(qk.job(job_id))
        return [
            Job.from_fields(f, job_id, queue)
            for job_id, f in zip(ids, pipe.execute(), strict=True)
            if f
        ]

    def dlq_list(
        self,
        *,
        queue: str | None = None,
        tenant: str | None = None,
        error: str | None = None,
        older_than_s: float | None = None,
        newer_than_s: float | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> DeadPage:
        """Dead letters, newest first, filtered by queue (a name, or a glob with ``*``/``?``
        that may match none), tenant, error text (substring, case-insensitive) and age (how
        long ago they were dead-lettered, by the server's clock), paged by
        ``offset``/``limit``."""
        if offset < 0 or limit < 1:
            raise AdminError("offset must be >= 0 and limit >= 1")
        if queue and ("*" in queue or "?" in queue):
            names = [n for n in self.broker.queues() if fnmatchcase(n, queue)]
        else:
            names = [self._check_queue(queue)] if queue else self.broker.queues()
        needle = error.lower() if error else None
        # A dead letter's score in the dead set is when it was dead-lettered (its dead_at, in
        # ms by the server's clock): age filters are score ranges. Whole jobs (payload,
        # traceback) are loaded for the page only; there may be many thousands.
        low: float | str = "-inf"
        high: float | str = "+inf"
        if older_than_s is not None or newer_than_s is not None:
            seconds, micros = self.client.time()
            now_ms = seconds * 1000 + micros / 1000
            if older_than_s is not None:
                high = now_ms - older_than_s * 1000
            if newer_than_s is not None:
                low = now_ms - newer_than_s * 1000
        matched: list[tuple[float, str, str]] = []  # (dead-lettered at, queue, id)
        for name in names:
            qk = self.broker.queue_keys(name)
            scored = self.client.zrevrangebyscore(qk.dead, high, low, withscores=True)
            if tenant is not None or needle is not None:
                scored = self._dead_matching(name, scored, tenant, needle)
            matched.extend((score, name, job_id) for job_id, score in scored)
        matched.sort(key=lambda m: m[0], reverse=True)
        page = matched[offset : offset + limit]
        loaded: dict[tuple[str, str], Job] = {}
        for name in dict.fromkeys(q for _, q, _ in page):
            for job in self._load(name, [i for _, q, i in page if q == name]):
                loaded[(name, job.id)] = job
        jobs = [loaded[(q, i)] for _, q, i in page if (q, i) in loaded]
        return DeadPage(len(matched), jobs)

    def _dead_matching(
        self,
        queue: str,
        scored: list[tuple[str, float]],
        tenant: str | None,
        needle: str | None,
        chunk: int = 1000,
    ) -> list[tuple[str, float]]:
        """The dead letters of ``scored`` whose tenant is ``tenant`` and whose error contains
        ``needle`` (lower case), reading just those two fields of each."""
        qk = self.broker.queue_keys(queue)
        kept: list[tuple[str, float]] = []
        for first in range(0, len(scored), chunk):
            part = scored[first : first + chunk]
            pipe = self.client.pipeline(transaction=False)
            for job_id, _ in part:
                pipe.hmget(qk.job(job_id), "tenant", "error")
            for entry, (job_tenant, job_error) in zip(part, pipe.execute(), strict=True):
                if tenant is not None and (job_tenant or None) != tenant:
                    continue
                if needle is not None and needle not in (job_error or "").lower():
                    continue
                kept.append(entry)
        return kept

    def workers(self) -> list[WorkerInfo]:
        keys = self.broker.keys
        registered = self.client.hgetall(keys.workers)
        out: list[WorkerInfo] = []
        for worker_id, raw in sorted(registered.items()):
            try:
                info = json.loads(raw)
            except ValueError:
                info = {}
            beat_raw = self.client.get(keys.heartbeat(worker_id))
            beat = json.loads(beat_raw) if beat_raw else {}
            queues = list(info.get("queues", []))
            current: list[str] = []
            held: list[tuple[str, str]] = []
            for q in queues:
                try:
                    ids = self.client.zrange(self.broker.queue_keys(q).processing(worker_id), 0, -1)
                except OUTAGE_ERRORS:  # its cluster shard is away: the others are listed
                    continue
                current.extend(ids)
                held.extend((q, job_id) for job_id in ids)
            out.append(
                WorkerInfo(
                    id=worker_id,
                    host=str(info.get("host", "")),
                    pid=int(info.get("pid", 0)),
                    queues=queues,
                    concurrency=int(info.get("concurrency", 1)),
                    state=str(beat.get("state", "lost")),
                    alive=bool(beat_raw),
                    last_heartbeat=beat.get("ts"),
                    processed=int(beat.get("processed", 0)),
                    failed=int(beat.get("failed", 0)),
                    current_jobs=current,
                    current_progress=_progress_of(self.broker, held),
                )
            )
        return out

    # -- changing ----------------------------------------------------------------------------

    def requeue(
        self,
        ids: Sequence[str] = (),
        *,
        all_jobs: bool = False,
        queue: str | None = None,
        to: str | None = None,
    ) -> int:
        """Move dead letters back to pending: the given ``ids`` or, with ``all_jobs``, every
        dead letter (of ``queue`` if given); to their origin queue or to ``to``.

        Returns how many jobs were requeued. A move to another queue adds the job there before
        removing it here, so a crash between the two never loses it.
        """
        self._check_writable("requeue")
        if not ids and not all_jobs:
            raise AdminError("give job ids or all_jobs=True")
        if to is not None:
            self.broker.register_queues([to])
        names = [self._check_queue(queue)] if queue else self.broker.queues()
        total = 0
        for name in names:
            qk = self.broker.queue_keys(name)
            if all_jobs:
                while batch := self.client.zrange(qk.dead, 0, 499):
                    moved = self._requeue_from(name, batch, to)
                    total += moved
                    if moved == 0:
                        break
            else:
                pipe = self.client.pipeline(transaction=False)
                for job_id in ids:
                    pipe.zscore(qk.dead, job_id)
                present = [i for i, s in zip(ids, pipe.execute(), strict=True) if s is not None]
                total += self._requeue_from(name, present, to)
        return total

    def find_dead(self, ids: Sequence[str], queue: str | None = None) -> dict[str, str]:
        """The queue each of ``ids`` is a dead letter of (of ``queue`` only, if given); ids
        that are no dead letter are left out."""
        names = [self._check_queue(queue)] if queue else self.broker.queues()
        found: dict[str, str] = {}
        for name in names:
            qk = self.broker.queue_keys(name)
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                pipe.zscore(qk.dead, job_id)
            for job_id, score in zip(ids, pipe.execute(), strict=True):
                if score is not None:
                    found.setdefault(job_id, name)
        return found

    def _requeue_from(self, queue: str, ids: Sequence[str], to: str | None) -> int:
        if not ids:
            return 0
        if to is None or to == queue:
            return self.broker.requeue_dead(queue, ids)
        qk = self.broker.queue_keys(queue)
        moved = 0
        for job_id in ids:
            fields = self.client.hgetall(qk.job(job_id))
            if not fields:
                continue
            self.broker.adopt(to, queue, job_id, fields)
            moved += self.broker.drop_dead(queue, [job_id])
        return moved

    def delete_dead(self, queue: str, ids: Sequence[str]) -> int:
        """Delete these dead letters of ``queue`` permanently, in one atomic step, and return
        how many; ids that are not dead letters there (requeued meanwhile, unknown) are
        skipped."""
        self._check_writable("delete")
        if not ids:
            raise AdminError("give the ids of the dead letters to delete")
        qk = self.broker.queue_keys(self._check_queue(queue))
        args = [self.broker.settings.events_maxlen, *ids]
        return int(self.broker.scripts.delete_dead(keys=[qk.tag], args=args))

    def purge(self, target: str, *, queue: str | None = None) -> int:
        """Delete jobs and return how many.

        ``target`` is a queue name (its pending and scheduled jobs), ``dead`` (dead letters
        of every queue, or of ``queue``) or ``all`` (pending, scheduled, dead and completed
        history of every queue, or of ``queue``). Running jobs are never touched.
        """
        self._check_writable("purge")
        if target == "dead":
            names = [self._check_queue(queue)] if queue else self.broker.queues()
            return sum(self.broker.purge(n, "dead") for n in names)
        if target == "all":
            names = [self._check_queue(queue)] if queue else self.broker.queues()
            return sum(self.broker.purge(n, t) for n in names for t in PURGE_TARGETS)
        name = self._check_queue(target)
        return self.broker.purge(name, "pending") + self.broker.purge(name, "scheduled")

    def pause(self, queue: str) -> bool:
        """Stop workers taking jobs from ``queue``; returns False if it was already paused."""
        self._check_writable("pause")
        return self.broker.set_paused(self._check_queue(queue), True)

    def resume(self, queue: str) -> bool:
        self._check_writable("resume")
        return self.broker.set_paused(self._check_queue(queue), False)

    def cancel(self, job_id: str, *, queue: str | None = None) -> Cancellation:
        """Cancel a job of ``queue`` (None: whichever queue has it): a pending or scheduled
        one is removed at once; a running one is taken from its worker, which stops its
        handler. It ends ``cancelled`` (a ``job.cancelled`` event) and never runs again.

        Raises:
            JobNotFound: no such job.
            NotCancellable: it has completed, is dead-lettered or was cancelled.
        """
        self._check_writable("cancel")
        return cancel_job(self.broker, job_id, None if queue is None else self._check_queue(queue))

    def rate_limit(self, queue: str) -> RateLimit | None:
        """The rate limit in force on ``queue`` (stored, else the setting's); None: none."""
        return rate_limit_of(self.broker, self._check_queue(queue))

    def set_rate_limit(self, queue: str, rate: str | None) -> RateLimit | None:
        """Store a rate limit on ``queue`` for every worker: ``rate`` like ``100/1m``, or
        None for none (even if the setting ``rate_limits`` has one). Returns the limit now in
        force.

        Raises:
            RateLimitError: ``rate`` is malformed.
        """
        self._check_writable("rate-limit")
        name = self._check_queue(queue)
        parsed = None if rate is None else parse_rate_limit(rate)
        store_rate_limit(self.broker, name, parsed)
        return rate_limit_of(self.broker, name)

    def reset_rate_limit(self, queue: str) -> RateLimit | None:
        """Forget the limit stored on ``queue``: the setting's applies again (returned)."""
        self._check_writable("rate-limit")
        name = self._check_queue(queue)
        clear_rate_limit(self.broker, name)
        return rate_limit_of(self.broker, name)


def _rate_fields(broker: Broker, queue: str, stored: str | None, now_ms: float) -> dict[str, Any]:
    """The rate-limit fields of a queue's stats (none without a limit)."""
    limit = rate_limit_of(broker, queue, stored or "")
    if limit is None:
        return {}
    return {
        "rate_limit": str(limit),
        "rate_limit_source": limit.source,
        "rate_used": starts_in_window(broker, limit, queue, now_ms),
    }


def _progress_of(broker: Broker, held: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The progress text of the jobs ``held`` (queue, id) that reported any."""
    if not held:
        return {}
    pipe = broker.client.pipeline(transaction=False)
    for queue, job_id in held:
        pipe.hmget(broker.queue_keys(queue).job(job_id), *PROGRESS_FIELDS)
    try:
        replies = pipe.execute()
    except OUTAGE_ERRORS:  # a shard is away: no progress shown this time
        return {}
    shown: dict[str, str] = {}
    for (queue, job_id), values in zip(held, replies, strict=True):
        fields = {k: v for k, v in zip(PROGRESS_FIELDS, values, strict=True) if v is not None}
        text = Job.from_fields(fields, job_id, queue).progress_text
        if text:
            shown[job_id] = text
    return shown
