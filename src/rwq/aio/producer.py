"""The async producer: :class:`rwq.queue.producer.Producer` for asyncio code, on a
``redis.asyncio`` client (standalone or cluster). Jobs are validated and encoded by the sync
producer's code, so options, errors and records are the same; only the sending awaits."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from rwq.aio.connection import AsyncRedisClient, connect, is_cluster
from rwq.config import Settings
from rwq.queue.handle import ENDED, Ended, JobNotFound, WaitTimeout, result_of
from rwq.queue.job import DEFAULT_PRIORITY, Job, JobError
from rwq.queue.keys import Keys
from rwq.queue.producer import (
    BatchError,
    DuplicateJob,
    JobSpec,
    PlainEncoder,
    Producer,
    unique_args,
)
from rwq.queue.scripts import source

__all__ = ["AsyncProducer"]

GROUP_CHUNKS = 16
"""Chunks sent in one round trip by :meth:`AsyncProducer.enqueue_many` (as the sync one)."""


class AsyncProducer:
    """Enqueues jobs from asyncio code.

    Use it from one event loop (the client's). ``await AsyncProducer.connect(settings)``
    makes its own client (closed by :meth:`aclose` or ``async with``); or hand it a client of
    :func:`rwq.aio.connect`.
    """

    def __init__(self, client: AsyncRedisClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._client: Any = client  # redis.asyncio's pipelines are loosely typed
        self._script = client.register_script(source("enqueue"))
        self._watch = client.register_script(source("watch"))
        self._cluster = is_cluster(client)
        self._maxlen = str(settings.events_maxlen)
        self._known_queues: set[str] = set()

    @classmethod
    async def connect(cls, settings: Settings) -> AsyncProducer:
        """A producer on a new client of the server ``settings`` name.

        Raises:
            ConnectionFailed: the server cannot be reached (see :func:`rwq.aio.connect`).
        """
        return cls(await connect(settings), settings)

    async def aclose(self) -> None:
        """Close the client."""
        await self.client.aclose()

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def enqueue(
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
    ) -> Job:
        """Enqueue one job and return it (with its id); the options of
        :meth:`rwq.queue.producer.Producer.enqueue`, unique keys included (its result:
        ``Producer.handle(job.id)``).

        Raises:
            JobError: the payload is not JSON, too large, or an option is out of range.
            DuplicateJob: the unique key is held and ``on_duplicate`` is ``refuse``.
        """
        spec = JobSpec(payload, priority, tenant, delay, at, max_retries, job_id, trace_id, timeout,
                       result_ttl)  # fmt: skip
        unique = unique_args(unique_key, unique_ttl, on_duplicate)
        job, block = Producer.encode(queue, spec, self.settings)
        await self._register(queue)
        args = self._args(queue, [block], check_ids=job_id is not None)
        flags = await self._script(keys=[self.keys.queue(queue).tag], args=[*args, *(unique or ())])
        if isinstance(flags[0], str):  # the unique key is held by this job
            if on_duplicate == "refuse":
                raise DuplicateJob(queue, str(unique_key), flags[0])
            fields = await self._client.hgetall(self.keys.queue(queue).job(flags[0]))
            return (
                Job.from_fields(fields, flags[0], queue)
                if fields
                else Job(flags[0], queue, None, state="gone")
            )
        job.unique_key = unique_key
        if not flags[0]:
            job.state = "duplicate"
        return job

    async def enqueue_many(
        self, queue: str, specs: Iterable[JobSpec | Any], chunk: int = 500
    ) -> list[Job]:
        """Enqueue many jobs in few round trips; plain values are taken as payloads.

        As :meth:`rwq.queue.producer.Producer.enqueue_many`: chunks of ``chunk`` jobs, each
        one atomic script call, 16 chunks per round trip; while the server stores one group
        the next is encoded. A job whose id already exists is not enqueued again (its
        returned ``state`` is ``duplicate``). Encoding a group runs on the event loop (about
        5 µs per job).

        Raises:
            BatchError: a job is invalid; the jobs before it were enqueued, none from it on.
        """
        await self._register(queue)
        jobs: list[Job] = []
        flags: list[int] = []
        blocks: list[str] = []
        given_ids = False  # whether a job of this group came with its own id
        inflight: asyncio.Task[list[list[int]]] | None = None
        plain = PlainEncoder(queue, self.settings)

        async def hand_over() -> None:
            """Collect the flags of the group sent before (groups go one after another, in
            order), then send this one."""
            nonlocal blocks, given_ids, inflight
            if inflight is not None:
                flags.extend(f for reply in await inflight for f in reply)
            chunks = [blocks[start : start + chunk] for start in range(0, len(blocks), chunk)]
            inflight = asyncio.ensure_future(self._send(queue, chunks, given_ids))
            blocks, given_ids = [], False
            await asyncio.sleep(0)  # it writes its request; the server works as we encode

        try:
            for item in specs:
                spec = item if isinstance(item, JobSpec) else None
                try:
                    job, block = (
                        plain(item) if spec is None else Producer.encode(queue, spec, self.settings)
                    )
                except JobError as exc:
                    if blocks:  # the jobs before it go in, as BatchError says
                        await hand_over()
                    raise BatchError(len(jobs), exc) from None
                jobs.append(job)
                blocks.append(block)
                given_ids = given_ids or (spec is not None and spec.job_id is not None)
                if len(blocks) >= chunk * GROUP_CHUNKS:
                    await hand_over()
            if blocks:
                await hand_over()
        finally:
            if inflight is not None:
                flags.extend(f for reply in await inflight for f in reply)
        for job, flag in zip(jobs, flags, strict=False):
            if not flag:
                job.state = "duplicate"
        return jobs

    async def wait(self, job: Job | str, timeout: float | None = None) -> Ended:
        """Block until a job (a :class:`Job` this producer returned, or an id, found on any
        queue) ends, at most ``timeout`` seconds (None: no limit); as
        :meth:`rwq.JobHandle.wait`, a blocking wait on the server, never polling.

        Raises:
            JobNotFound: there is no such job.
            WaitTimeout: it did not end in time.
        """
        if timeout is not None and not (timeout >= 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
        job_id, queue = (job.id, job.queue) if isinstance(job, Job) else (job, None)
        queue = queue or await self._queue_of(job_id)
        tag = self.keys.queue(queue).tag
        state = await self._watch(keys=[tag], args=[job_id, "1"])
        if not state:
            raise JobNotFound(job_id, queue)
        if state in ENDED:
            return await self._ended(queue, job_id, state)
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self.keys.queue(queue).done(job_id)
        woken = False
        try:
            while True:
                block = 0.0  # BLPOP's 0: no limit
                if deadline is not None:
                    block = deadline - time.monotonic()
                    if block <= 0:
                        raise await self._timed_out(queue, job_id, timeout)
                    block = max(block, 0.001)
                popped = await self._client.blpop([done], timeout=block)
                if popped is None:
                    raise await self._timed_out(queue, job_id, timeout)
                woken = True
                ended = await self._ended(queue, job_id, popped[1])
                if ended.job is None or ended.job.state in ENDED:
                    return ended
                woken = False  # an earlier waiter's token: the job runs still
        finally:
            if not woken:  # timed out, cancelled or failed: no longer waiting
                with contextlib.suppress(RedisError):
                    await self._watch(keys=[tag], args=[job_id, "-1"])

    async def result(self, job: Job | str, timeout: float | None = None) -> Any:
        """What a job's handler returned, once it completes (see :meth:`wait`); raises as
        :meth:`rwq.JobHandle.result` does (``JobFailed``, ``JobCancelled``, ...)."""
        return result_of(await self.wait(job, timeout))

    async def _queue_of(self, job_id: str) -> str:
        names = sorted(await self._client.smembers(self.keys.queues))
        for name in names:
            if await self._client.exists(self.keys.queue(name).job(job_id)):
                return str(name)
        raise JobNotFound(job_id, None)

    async def _ended(self, queue: str, job_id: str, state: str) -> Ended:
        fields = await self._client.hgetall(self.keys.queue(queue).job(job_id))
        job = Job.from_fields(fields, job_id, queue) if fields else None
        return Ended(job_id, queue, job.state if job and job.state in ENDED else state, job)

    async def _timed_out(self, queue: str, job_id: str, timeout: float | None) -> WaitTimeout:
        state = await self._client.hget(self.keys.queue(queue).job(job_id), "state")
        return WaitTimeout(job_id, timeout or 0.0, state or "gone")

    async def _register(self, queue: str) -> None:
        if queue not in self._known_queues:
            await self._client.sadd(self.keys.queues, self.keys.queue(queue).queue)
            self._known_queues.add(queue)

    def _args(self, queue: str, records: list[str], *, check_ids: bool) -> list[str]:
        """The enqueue script's arguments (as :meth:`rwq.queue.broker.Broker.enqueue_raw`)."""
        joined = "\x1e".join(records)
        notify = self.keys.notify_channel
        return [self._maxlen, notify, queue, joined, "1" if check_ids else "0"]

    async def _send(self, queue: str, chunks: list[list[str]], check_ids: bool) -> list[Any]:
        """One pipeline of an enqueue script call per chunk (as
        :meth:`rwq.queue.broker.Broker.execute`: a bare ``EVALSHA``, run again after loading
        the script if the server lost it; ``EVAL`` on a cluster)."""
        tag = self.keys.queue(queue).tag
        for attempt in range(2):
            pipe = self._client.pipeline(transaction=False)
            for records in chunks:
                args = self._args(queue, records, check_ids=check_ids)
                if self._cluster:
                    pipe.execute_command("EVAL", self._script.script, 1, tag, *args)
                else:
                    pipe.execute_command("EVALSHA", self._script.sha, 1, tag, *args)
            try:
                result: list[Any] = await pipe.execute()
                return result
            except NoScriptError:
                if attempt:
                    raise
                await self._client.script_load(self._script.script)
        raise AssertionError("unreachable")
