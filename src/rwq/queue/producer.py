"""Producers: put jobs on queues, now or later, one at a time or in batches."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.queue.handle import JobHandle
from rwq.queue.job import (
    DEFAULT_PRIORITY,
    JSON,
    Job,
    JobError,
    PayloadTooLarge,
    check_priority,
    encode_payload,
    new_job_id,
    pick_labels,
)
from rwq.queue.timeouts import TimeoutValueError, parse_timeout
from rwq.units import UnitError, parse_duration


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
    timeout: float | str | None = None
    """How long its handler may run: seconds or a duration (``30s``, ``5m``); None: the
    queue's timeout (setting ``queue_timeouts``) or the worker's ``--timeout``."""
    result_ttl: float | str | None = None
    """How long the job and its result are kept once it completes: seconds or a duration
    (``10m``); 0: not kept; None: the setting ``result_ttl``."""


_TENANT = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,128}")
_JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


_UNIQUE_KEY = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,200}")
DEFAULT_UNIQUE_TTL = 3600.0
"""Seconds a unique key lives when ``unique_ttl`` is not given."""
ON_DUPLICATE = ("refuse", "existing")
"""What ``enqueue`` does with a job whose unique key is held: raise, or return that job."""


class DuplicateJob(JobError):
    """A job's unique key is held by another job of its queue (``on_duplicate="refuse"``)."""

    def __init__(self, queue: str, unique_key: str, job_id: str) -> None:
        self.queue = queue
        self.unique_key = unique_key
        self.job_id = job_id
        super().__init__(
            f"unique key {unique_key!r} is held by job {job_id} on {queue} until its TTL ends; "
            "not enqueued"
        )


class BatchError(JobError):
    """A job of a batch was invalid; the ``index`` jobs before it were enqueued."""

    def __init__(self, index: int, cause: JobError) -> None:
        self.index = index
        self.cause = cause
        super().__init__(
            f"job #{index} of the batch: {cause} ({index} job(s) before it were enqueued)"
        )


class Producer:
    """Enqueues jobs through a :class:`Broker`."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._known_queues: set[str] = set()
        self._label_fields = broker.settings.label_fields

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
        timeout: float | str | None = None,
        result_ttl: float | str | None = None,
        unique_key: str | None = None,
        unique_ttl: float | str | None = None,
        on_duplicate: str = "refuse",
    ) -> JobHandle:
        """Enqueue one job and return its handle: the job as enqueued (``handle.id``,
        ``handle.state``, every field of :class:`Job`), its ``status()`` and ``result()``.
        ``timeout`` (seconds, or a duration such as ``"30s"``) bounds how long its handler may
        run; ``result_ttl`` how long its result is kept once it completes (``docs/queue.md``).

        ``unique_key`` makes the job unique on its queue for ``unique_ttl`` (seconds or a
        duration; default an hour): while the key lives, another job with it is refused
        (``on_duplicate="refuse"``: :class:`DuplicateJob`) or the job holding it is returned
        instead (``"existing"``, its handle; its ``state`` is ``gone`` once its record is:
        completed and no longer kept, or purged). The key is released at its TTL, or when
        its job is cancelled.

        Raises:
            JobError: the payload is not JSON, too large, or an option is out of range.
            DuplicateJob: the unique key is held and ``on_duplicate`` is ``refuse``.
        """
        spec = JobSpec(payload, priority, tenant, delay, at, max_retries, job_id, trace_id, timeout,
                       result_ttl)  # fmt: skip
        unique = unique_args(unique_key, unique_ttl, on_duplicate)
        job, block = self._encode(queue, spec)
        if queue not in self._known_queues:
            self.broker.register_queues([queue])
            self._known_queues.add(queue)
        result = self.broker.enqueue_raw(
            queue, [block], check_ids=job_id is not None, unique=unique
        )[0]
        if isinstance(result, str):  # the unique key is held by this job
            assert unique_key is not None
            if on_duplicate == "refuse":
                raise DuplicateJob(queue, unique_key, result)
            return JobHandle(self.broker, self._existing(queue, result))
        if not result:
            job.state = "duplicate"
        job.unique_key = unique_key
        return JobHandle(self.broker, job)

    def handle(self, job_id: str, queue: str | None = None) -> JobHandle:
        """The handle of a job enqueued earlier (by anyone), found by its id: on ``queue``, or
        on whichever registered queue has it.

        Raises:
            JobNotFound: no queue has it (never enqueued, deleted, or its result expired).
        """
        return JobHandle.find(self.broker, job_id, queue)

    def _existing(self, queue: str, job_id: str) -> Job:
        """The job ``job_id`` of ``queue`` as stored; state ``gone`` once its hash is."""
        fields = self.broker.client.hgetall(self.broker.queue_keys(queue).job(job_id))
        if fields:
            return Job.from_fields(fields, job_id, queue)
        return Job(job_id, queue, None, state="gone")

    def enqueue_many(
        self, queue: str, specs: Iterable[JobSpec | Any], chunk: int = 500
    ) -> list[Job]:
        """Enqueue many jobs in few round trips; plain values are taken as payloads.

        Jobs go in chunks of ``chunk``, each one atomic script call, several chunks per
        round trip. While the server stores one group of chunks the next is encoded (a sender
        thread), so client and server work overlap. A job whose id already exists is not
        enqueued again (its returned ``state`` is ``duplicate``).

        Raises:
            BatchError: a job is invalid; the jobs before it were enqueued, none from it on.
        """
        if queue not in self._known_queues:
            self.broker.register_queues([queue])
            self._known_queues.add(queue)
        jobs: list[Job] = []
        flags: list[int] = []
        group = chunk * 16
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rwq-enqueue") as sender:
            inflight: Future[list[Any]] | None = None
            blocks: list[str] = []
            given_ids = False  # whether a job of this group came with its own id

            def send() -> Future[list[Any]]:
                records, check = blocks, given_ids

                def build(pipe: Any) -> None:
                    for start in range(0, len(records), chunk):
                        self.broker.enqueue_raw(
                            queue, records[start : start + chunk], check_ids=check, client=pipe
                        )

                return sender.submit(self.broker.execute, build)

            plain = PlainEncoder(queue, self.broker.settings)
            try:
                for item in specs:
                    spec = item if isinstance(item, JobSpec) else None
                    try:
                        job, block = plain(item) if spec is None else self._encode(queue, spec)
                    except JobError as exc:
                        if blocks:  # the jobs before it go in, as BatchError says
                            future = send()
                            if inflight is not None:
                                flags.extend(f for r in inflight.result() for f in r)
                            inflight = future
                        raise BatchError(len(jobs), exc) from None
                    jobs.append(job)
                    blocks.append(block)
                    given_ids = given_ids or (spec is not None and spec.job_id is not None)
                    if len(blocks) >= group:
                        future = send()
                        blocks, given_ids = [], False
                        if inflight is not None:
                            flags.extend(f for r in inflight.result() for f in r)
                        inflight = future
                if blocks:
                    future = send()
                    blocks = []
                    if inflight is not None:
                        flags.extend(f for r in inflight.result() for f in r)
                    inflight = future
            finally:
                if inflight is not None:
                    flags.extend(f for r in inflight.result() for f in r)
        for job, flag in zip(jobs, flags, strict=False):
            if not flag:
                job.state = "duplicate"
        return jobs

    def _encode(self, queue: str, spec: JobSpec) -> tuple[Job, str]:
        return self.encode(queue, spec, self.broker.settings)

    @staticmethod
    def encode(queue: str, spec: JobSpec, settings: Settings) -> tuple[Job, str]:
        """Validate ``spec`` and build the job and its enqueue record (what the enqueue script
        takes), without sending it: :mod:`rwq.aio` sends it on its own client.

        Raises:
            JobError: the payload is not JSON, too large, or an option is out of range.
        """
        priority = check_priority(spec.priority)
        max_retries = settings.max_retries if spec.max_retries is None else spec.max_retries
        if (
            not isinstance(max_retries, int)
            or isinstance(max_retries, bool)
            or not 0 <= max_retries <= MAX_RETRIES
        ):
            raise JobError(
                f"max_retries must be a whole number from 0 to {MAX_RETRIES}, got "
                f"{str(max_retries)[:24]}"
            )
        if spec.tenant is not None and not _TENANT.fullmatch(spec.tenant):
            raise JobError(f"tenant must be 1-128 printable characters, got {spec.tenant!r}")
        if spec.job_id is not None and not _JOB_ID.fullmatch(spec.job_id):
            raise JobError(
                f"job id must be 1-64 of letters, digits, '.', '_', ':' or '-', got {spec.job_id!r}"
            )
        timeout = None
        if spec.timeout is not None:
            try:
                timeout = parse_timeout(spec.timeout)
            except TimeoutValueError as exc:
                raise JobError(str(exc)) from None
        result_ttl = None if spec.result_ttl is None else parse_result_ttl(spec.result_ttl)
        now = time.time()
        run_at = _run_at(spec, now)
        created_at = round(now * 1000, 3)
        try:
            # Built by hand: one encoder call per job instead of a dict round trip.
            spec_text = (
                f'{{"payload":{JSON.encode(spec.payload)},"max_retries":{max_retries},'
                f'"created_at":{created_at}'
                + (f',"timeout":{timeout!r}' if timeout is not None else "")
                + (f',"result_ttl":{result_ttl!r}' if result_ttl is not None else "")
                + (f',"trace_id":{JSON.encode(spec.trace_id)}}}' if spec.trace_id else "}")
            )
        except (TypeError, ValueError) as exc:
            raise JobError(f"payload is not JSON-serialisable: {exc}") from None
        if len(spec_text) > settings.payload_limit:  # ASCII-only JSON: chars == bytes
            encode_payload(spec.payload, settings.payload_limit)  # raises with the exact size
        found = pick_labels(spec.payload, settings.label_fields)
        labels = JSON.encode(found) if found else ""
        job = Job(
            id=spec.job_id or new_job_id(),
            queue=queue,
            payload=spec.payload,
            priority=priority,
            tenant=spec.tenant,
            max_retries=max_retries,
            state="scheduled" if run_at else "pending",
            created_at=created_at,
            run_at=run_at,
            trace_id=spec.trace_id,
            labels=found,
            timeout=timeout,
            result_ttl=result_ttl,
        )
        record = (
            f"{job.id}\x1f{priority}\x1f{spec.tenant or ''}\x1f"
            f"{f'{run_at:.0f}' if run_at else ''}\x1f{labels}\x1f{spec_text}"
        )
        return job, record


class PlainEncoder:
    """Encodes bare payloads with every option at its default: the hot path of a big batch,
    doing per job only what differs per job (id, payload)."""

    def __init__(self, queue: str, settings: Settings) -> None:
        self.queue = queue
        self.limit = settings.payload_limit
        self.max_retries = settings.max_retries
        self.created_at = round(time.time() * 1000, 3)
        self.middle = f"\x1f{DEFAULT_PRIORITY}\x1f\x1f\x1f"
        self.labels = settings.label_fields
        self.label_keys = frozenset(self.labels)
        self.tail = f',"max_retries":{self.max_retries},"created_at":{self.created_at}}}'

    def __call__(self, payload: Any) -> tuple[Job, str]:
        try:
            text = JSON.encode(payload)
        except (TypeError, ValueError) as exc:
            raise JobError(f"payload is not JSON-serialisable: {exc}") from None
        if len(text) > self.limit:  # ASCII-only JSON: chars == bytes
            raise PayloadTooLarge(len(text), self.limit)
        job_id = new_job_id()
        job = Job(job_id, self.queue, payload, DEFAULT_PRIORITY, None, 0, self.max_retries,
                  "pending", self.created_at)  # fmt: skip
        # Most payloads have no labelled field: a set test, not a call, says so (walking the
        # payload's keys, as the encoding above did).
        keys = self.label_keys
        found = None
        if keys and isinstance(payload, dict) and not keys.isdisjoint(payload):
            found = pick_labels(payload, self.labels)
        if found is None:
            return job, f'{job_id}{self.middle}\x1f{{"payload":{text}{self.tail}'
        job.labels = found
        return job, f'{job_id}{self.middle}{JSON.encode(found)}\x1f{{"payload":{text}{self.tail}'


def unique_args(
    key: str | None, ttl: float | str | None, on_duplicate: str
) -> tuple[str, int] | None:
    """The unique key and its TTL in ms as the enqueue script takes them (ARGV[6], ARGV[7]);
    None: no key. Raises :class:`JobError` naming a bad option."""
    if on_duplicate not in ON_DUPLICATE:
        raise JobError(f"on_duplicate must be refuse or existing, got {on_duplicate!r}")
    if key is None:
        if ttl is not None:
            raise JobError("unique_ttl needs a unique_key")
        return None
    check_unique_key(key)
    try:
        seconds = DEFAULT_UNIQUE_TTL if ttl is None else parse_timeout(ttl, "unique_ttl")
    except TimeoutValueError as exc:
        raise JobError(str(exc)) from None
    return key, max(1, round(seconds * 1000))


def check_unique_key(key: object, what: str = "unique_key") -> str:
    """``key`` if it is a unique key (1-200 printable characters), else :class:`JobError`
    naming ``what``."""
    if not isinstance(key, str) or not _UNIQUE_KEY.fullmatch(key) or not _is_text(key):
        raise JobError(f"{what} must be 1-200 printable characters, got {key!r:.60}")
    return key


def _is_text(text: str) -> bool:
    """Whether ``text`` can be stored (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


MAX_RETRIES = 1000
"""The most retries a job may ask for (the setting's own bound)."""
MAX_DELAY = 10 * 365.25 * 86400
"""Seconds: a job is due at most ten years ahead (a farther time is a typo, and it would sit
in the scheduled set forever)."""


def parse_result_ttl(value: float | str, what: str = "result_ttl") -> float:
    """The seconds of a job's ``result_ttl`` (0 to 30 days; 0: not kept); ``what`` names it in
    errors.

    Raises:
        JobError: not a duration, or longer than 30 days.
    """
    try:
        seconds = parse_duration(value, what)
    except UnitError as exc:
        raise JobError(str(exc)) from None
    if seconds > MAX_RESULT_TTL:
        raise JobError(f"{what}: at most 30 days, got {value!r}")
    return seconds


MAX_RESULT_TTL = 30 * 86400.0
"""Seconds: the longest a job's result is kept (the setting's own bound)."""


def _run_at(spec: JobSpec, now: float) -> float | None:
    """The epoch ms at which the job becomes due, or None to run now."""
    if spec.delay is not None and spec.at is not None:
        raise JobError("give either delay or at, not both")
    if spec.delay is not None:
        if not 0 <= spec.delay <= MAX_DELAY:
            raise JobError(f"delay must be 0 to {MAX_DELAY:.0f} seconds (ten years), got "
                           f"{spec.delay:g}")  # fmt: skip
        return (now + spec.delay) * 1000 if spec.delay > 0 else None
    if spec.at is not None:
        try:
            when = spec.at.timestamp() if isinstance(spec.at, datetime) else float(spec.at)
        except (OverflowError, ValueError, OSError) as exc:
            raise JobError(f"at: not a time ({exc})") from None
        if not when - now <= MAX_DELAY:
            raise JobError(f"at must be at most ten years ahead, got {spec.at}")
        return when * 1000 if when > now else None
    return None
