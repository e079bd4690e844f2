"""The broker: one Redis client, the key space and the queue scripts, shared by producers,
workers and admin operations. Each method is one atomic transition of one queue."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from rwq.config import Settings
from rwq.queue.job import Job
from rwq.queue.keys import Keys, QueueKeys
from rwq.queue.scripts import Scripts

MAX_ERROR_CHARS = 2000
"""Characters of a failed run's error kept on the job and in its events."""
MAX_TRACEBACK_CHARS = 8000
"""Characters of a failed run's traceback kept (its end)."""


@dataclass(frozen=True)
class Fetched:
    """What one dequeue call returned."""

    jobs: list[Job]
    paused: bool
    next_due_ms: float | None
    """When the queue's earliest scheduled job becomes due (None: nothing scheduled)."""


@dataclass(frozen=True)
class Failure:
    """A failed run to record: retried after ``delay_ms`` unless retries are exhausted."""

    job_id: str
    duration_ms: float
    error: str
    traceback: str = ""
    delay_ms: int = 0
    permanent: bool = False
    attempt: int | None = None
    """The attempt that failed: recorded only while the job is still at that attempt (None:
    whatever its attempt)."""
    timeout: float | None = None
    """Seconds: the run was stopped at this timeout (a ``job.timed_out`` event)."""
    stopped: str = ""
    """What became of a timed-out handler: ``killed``, ``abandoned`` or ``cancelled``."""


Done = tuple[str, float] | tuple[str, float, int] | tuple[str, float, int, str, str, int]
"""A completed run to record: job id, duration in ms and, to refuse a late result of an
earlier attempt, the attempt; then its result's JSON ("" for none), why a result was not kept
("" if it was) and the ms to keep the job with its result (-1: the setting ``result_ttl``; 0:
delete it at once)."""


class Broker:
    """Atomic queue transitions over one Redis (or Redis Cluster) client."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.scripts = Scripts(client)
        self._maxlen = str(settings.events_maxlen)
        self._result_ttl_ms = str(round(settings.result_ttl * 1000))

    def execute(self, build: Callable[[Any], object]) -> list[Any]:
        """Run a pipeline that ``build`` fills (scripts included) in one round trip.

        If the server lost the scripts (a restart or ``SCRIPT FLUSH``), every script call in
        the pipeline was refused without running: the scripts are loaded and the pipeline is
        built and run once more.
        """
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            build(pipe)
            try:
                result: list[Any] = pipe.execute()
                return result
            except NoScriptError:
                if attempt:
                    raise
                self.scripts.load(self.client)
        raise AssertionError("unreachable")

    def queue_keys(self, queue: str) -> QueueKeys:
        return self.keys.queue(queue)

    # -- registry --------------------------------------------------------------------------

    def register_queues(self, queues: Iterable[str]) -> None:
        names = [self.keys.queue(q).queue for q in queues]
        if names:
            self.client.sadd(self.keys.queues, *names)

    def queues(self) -> list[str]:
        """Every known queue, sorted by name."""
        return sorted(self.client.smembers(self.keys.queues))

    def queue_exists(self, queue: str) -> bool:
        return bool(self.client.sismember(self.keys.queues, queue))

    # -- transitions -------------------------------------------------------------------------

    def enqueue_raw(
        self, queue: str, records: Sequence[str], *, check_ids: bool = True, client: Any = None
    ) -> Any:
        """Run the enqueue script for encoded job records (see :mod:`rwq.queue.producer`);
        ``check_ids=False`` when every id was generated (none can exist yet)."""
        qk = self.keys.queue(queue)
        joined = "\x1e".join(records)
        args = [self._maxlen, self.keys.notify_channel, queue, joined, "1" if check_ids else "0"]
        return self.scripts.enqueue(keys=[qk.tag], args=args, client=client)

    def fetch(self, queue: str, worker_id: str, count: int, client: Any = None) -> Fetched:
        """Promote due scheduled jobs, then move up to ``count`` jobs to the worker."""
        qk = self.keys.queue(queue)
        raw = self.scripts.dequeue(
            keys=[qk.tag], args=[worker_id, count, self._maxlen, queue], client=client
        )
        return parse_fetched(raw, queue)

    def complete(
        self, queue: str, worker_id: str, done: Sequence[Done], client: Any = None
    ) -> list[int]:
        """Mark held jobs completed; returns 1 per job completed, 0 for a stale ack (not held
        by ``worker_id``, or no longer at the attempt given)."""
        qk = self.keys.queue(queue)
        args: list[Any] = [
            worker_id,
            self._maxlen,
            queue,
            self.settings.history_limit,
            len(done),
        ]
        default_ttl = self._result_ttl_ms
        for item in done:
            if len(item) == 6:
                ttl = item[5]
                args.extend((item[0], f"{item[1]:.3f}", item[2], item[3], item[4],
                             default_ttl if ttl < 0 else ttl))  # fmt: skip
            else:
                fence = item[2] if len(item) == 3 else ""
                args.extend((item[0], f"{item[1]:.3f}", fence, "", "", default_ttl))
        result: list[int] = self.scripts.complete(keys=[qk.tag], args=args, client=client)
        return result

    def fail(
        self, queue: str, worker_id: str, failures: Sequence[Failure], client: Any = None
    ) -> list[str]:
        """Record failures; returns ``retried``, ``dead`` or ``""`` (stale) per job."""
        qk = self.keys.queue(queue)
        args: list[Any] = [worker_id, self._maxlen, queue, len(failures)]
        for f in failures:
            args.extend(
                (
                    f.job_id,
                    f"{f.duration_ms:.3f}",
                    f.error[:MAX_ERROR_CHARS],
                    f.traceback[-MAX_TRACEBACK_CHARS:],
                    int(f.delay_ms),
                    "1" if f.permanent else "0",
                    "" if f.attempt is None else f.attempt,
                    "" if f.timeout is None else f"{f.timeout * 1000:.0f}",
                    f.stopped,
                )
            )
        result: list[str] = self.scripts.fail(keys=[qk.tag], args=args, client=client)
        return result

    def watch(self, queue: str, job_id: str, waiting: bool) -> str:
        """Count a waiter in (``waiting``) or out of the job's waiters, woken when it ends (on
        its :meth:`QueueKeys.done` list); returns its state ("" if there is no such job)."""
        qk = self.keys.queue(queue)
        state: str = self.scripts.watch(keys=[qk.tag], args=[job_id, "1" if waiting else "-1"])
        return state

    def release(self, queue: str, worker_id: str, reason: str, error: str) -> tuple[int, int]:
        """Give back every job ``worker_id`` holds on ``queue``: (requeued, dead-lettered)."""
        qk = self.keys.queue(queue)
        requeued, dead = self.scripts.release(
            keys=[qk.tag],
            args=[worker_id, self._maxlen, queue, self.keys.notify_channel, reason, error],
        )
        return int(requeued), int(dead)

    def requeue_dead(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        qk = self.keys.queue(queue)
        args = [self._maxlen, queue, self.keys.notify_channel, "dead_letter", *ids]
        return int(self.scripts.requeue_dead(keys=[qk.tag], args=args))

    def adopt(self, queue: str, from_queue: str, job_id: str, fields: dict[str, str]) -> bool:
        """Add a job (its hash ``fields``, moved from ``from_queue``) to ``queue`` unless it
        is already there."""
        qk = self.keys.queue(queue)
        flat: list[str] = []
        for key, value in fields.items():
            flat.extend((key, value))
        args = [self._maxlen, queue, self.keys.notify_channel, from_queue, job_id, *flat]
        return bool(self.scripts.adopt(keys=[qk.tag], args=args))

    def drop_dead(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        qk = self.keys.queue(queue)
        return int(self.scripts.drop_dead(keys=[qk.tag], args=list(ids)))

    def purge(self, queue: str, target: str, chunk: int = 1000) -> int:
        """Remove every job of ``target`` (pending, scheduled, dead, completed) in chunks."""
        qk = self.keys.queue(queue)
        total = 0
        while True:
            n = int(self.scripts.purge(keys=[qk.tag], args=[self._maxlen, queue, target, chunk]))
            total += n
            if n == 0 or target == "completed":
                return total

    def set_paused(self, queue: str, paused: bool) -> bool:
        qk = self.keys.queue(queue)
        action = "pause" if paused else "resume"
        args = [self._maxlen, queue, self.keys.notify_channel, action]
        return bool(self.scripts.pause(keys=[qk.tag], args=args))


def parse_fetched(raw: list[Any], queue: str) -> Fetched:
    state, next_due = raw[0], raw[1]
    jobs = [Job.from_flat(flat, job_id, queue) for job_id, flat in raw[2:]]
    return Fetched(
        jobs=jobs,
        paused=state == "paused",
        next_due_ms=float(next_due) if next_due not in ("", None) else None,
    )
