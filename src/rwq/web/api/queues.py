"""``/api/v1/queues``: statistics, peeking at jobs, enqueueing, purge, pause and resume."""

from __future__ import annotations

import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from rwq.queue.admin import UnknownQueue
from rwq.queue.job import JobError, new_job_id
from rwq.queue.producer import DuplicateJob, Producer
from rwq.units import UnitError, counted, parse_duration
from rwq.web.access import Principal
from rwq.web.api.common import API_PREFIX, errors, refuse_in_read_only
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.models import (
    QUEUE_PATTERN,
    EnqueueRequest,
    JobList,
    JobOut,
    JsonBody,
    PauseResult,
    PeekState,
    PurgeRequest,
    PurgeResult,
    QueueStatsOut,
    StatsOut,
    Throughput,
)

__all__ = ["existing", "router"]

router = APIRouter(prefix=f"{API_PREFIX}/queues", tags=["queues"])
Context = Annotated[WebContext, Depends(web_context)]
PEEK = "admin.queue.peek"
QueueName = Annotated[str, Path(pattern=QUEUE_PATTERN, description="A queue's name.")]


def existing(context: WebContext, principal: Principal, queue: str) -> str:
    """``queue`` if it exists, else a 404 listing the queues the token may see."""
    if not context.broker.queue_exists(queue):
        raise UnknownQueue(queue, principal.visible(context.broker.queues()))
    return queue


@router.get("", response_model=StatsOut, responses=errors(), summary="Every queue's stats")
def list_queues(principal: Authenticated, context: Context) -> StatsOut:
    """Statistics of every queue inside the token's queue scope (`admin.stats.read`)."""
    principal.require("admin.stats.read", listing=True)
    if principal.token.scope.all_queues:  # one round trip fewer than naming every queue
        return StatsOut.model_validate(context.admin.stats().to_dict())
    queues = principal.visible(context.broker.queues())
    if not queues:
        workers = int(context.broker.client.hlen(context.broker.keys.workers))
        return StatsOut(queues=[], workers=workers, taken_at=time.time())
    return StatsOut.model_validate(context.admin.stats(queues).to_dict())


@router.get("/{queue}", response_model=QueueStatsOut, responses=errors(404),
            summary="One queue's stats")  # fmt: skip
def get_queue(queue: QueueName, principal: Authenticated, context: Context) -> QueueStatsOut:
    """One queue's statistics (`admin.stats.read` on the queue)."""
    principal.require("admin.stats.read", queue)
    stats = context.admin.stats([existing(context, principal, queue)])
    return QueueStatsOut.model_validate(stats.to_dict()["queues"][0])


@router.get("/{queue}/throughput", response_model=Throughput, responses=errors(404),
            summary="A queue's throughput per second")  # fmt: skip
def get_throughput(
    queue: QueueName,
    principal: Authenticated,
    context: Context,
    seconds: Annotated[int, Query(ge=1, le=3600, description="How many seconds back.")] = 60,
) -> Throughput:
    """Jobs completed and failed in each of the last `seconds`, for charts
    (`admin.stats.read` on the queue)."""
    principal.require("admin.stats.read", queue)
    completed, failed = context.admin.throughput(existing(context, principal, queue), seconds)
    return Throughput(queue=queue, seconds=seconds, completed=completed, failed=failed)


@router.get("/{queue}/jobs", response_model=JobList, response_class=JsonBody,
            responses=errors(400, 404),
            summary="Peek at a queue's jobs")  # fmt: skip
def peek_jobs(
    queue: QueueName,
    principal: Authenticated,
    context: Context,
    state: Annotated[PeekState, Query(description="Which jobs.")] = "pending",
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 20,
) -> JobList:
    """The next jobs of a state: pending in run order, dead newest first
    (`admin.queue.peek` on the queue)."""
    principal.require("admin.queue.peek", queue)
    jobs = context.admin.peek(existing(context, principal, queue), limit, state)
    return JobList(queue=queue, state=state, jobs=[JobOut(**j.to_dict()) for j in jobs])


@router.post("/{queue}/jobs", response_model=JobOut, status_code=201, response_class=JsonBody,
             responses=errors(409), summary="Enqueue a job")  # fmt: skip
def enqueue_job(
    queue: QueueName,
    body: EnqueueRequest,
    principal: Authenticated,
    context: Context,
    response: Response,
) -> JobOut:
    """Enqueue one job on the queue, created if new (`admin.queue.enqueue` on the queue):
    201 and the job as enqueued. Enqueueing is idempotent by `job_id`: when a job of that id
    is on the queue already, nothing is enqueued. That job, or with `unique_key` and
    `on_duplicate: existing` the job holding the key, is answered as stored (200) to a token
    that may read the queue's jobs (`admin.queue.peek`); otherwise, and with
    `on_duplicate: refuse`, the answer is a 409 `duplicate` naming it."""
    refuse_in_read_only(context, principal, "admin.queue.enqueue", queue)
    principal.require("admin.queue.enqueue", queue)
    options = body.model_dump(exclude={"payload", "job_id"}, exclude_none=True)
    job_id = body.job_id or new_job_id()  # the key's holder is told apart by its id
    try:
        if body.delay is not None:
            options["delay"] = parse_duration(body.delay, "delay")
        # A producer per request: it registers the queue each time (after a data loss too).
        handle = Producer(context.broker).enqueue(queue, body.payload, job_id=job_id, **options)
    except DuplicateJob as exc:
        raise ApiError(409, "duplicate", str(exc), argument="unique_key",
                       job_id=exc.job_id) from None  # fmt: skip
    except (JobError, UnitError) as exc:  # a field's value out of range, as pydantic's
        raise ApiError(422, "invalid_argument", str(exc), argument=_argument_of(exc)) from None
    job = handle.job
    if job.state != "duplicate" and job.id == job_id:
        principal.done(f"enqueued job {job.id}")
        stored = context.admin.job(queue, job.id)  # with the server's enqueue time
        return JobOut(**(stored or job).to_dict())
    why = "a job of that id is" if job.state == "duplicate" else "the job holding its key is"
    principal.done(f"not enqueued: {why} {job.id}")
    if not (principal.holds(PEEK) and principal.allows_queue(queue)):
        raise ApiError(409, "duplicate", f"not enqueued: {why} {job.id}", argument="job_id",
                       job_id=job.id)  # fmt: skip
    principal.require(PEEK, queue)  # its contents are answered
    stored = context.admin.job(queue, job.id) if job.state == "duplicate" else job
    response.status_code = 200
    return JobOut(**(stored or job).to_dict())


def _argument_of(exc: JobError | UnitError) -> str:
    """The request field a refused job's message names first (``delay must be ...``,
    ``give either delay or at``: ``delay``)."""
    words: list[str] = re.findall(r"[a-z_]+", str(exc))
    return next((w for w in words if w in EnqueueRequest.model_fields), "payload")


@router.post("/{queue}/purge", response_model=PurgeResult, responses=errors(400, 404, 409),
             summary="Delete a queue's jobs")  # fmt: skip
def purge_queue(
    queue: QueueName, body: PurgeRequest, principal: Authenticated, context: Context
) -> PurgeResult:
    """Delete a queue's pending, scheduled, dead or completed jobs permanently; running jobs
    are never touched (`admin.queue.purge` on the queue)."""
    refuse_in_read_only(context, principal, "admin.queue.purge", queue)
    principal.require("admin.queue.purge", queue)
    purged = context.broker.purge(existing(context, principal, queue), body.target)
    principal.done(f"purged {counted(purged, body.target + ' job')}")
    return PurgeResult(queue=queue, target=body.target, purged=purged)


@router.post("/{queue}/pause", response_model=PauseResult, responses=errors(400, 404, 409),
             summary="Pause a queue")  # fmt: skip
def pause_queue(queue: QueueName, principal: Authenticated, context: Context) -> PauseResult:
    """Stop workers taking jobs from the queue (`admin.queue.pause` on the queue)."""
    refuse_in_read_only(context, principal, "admin.queue.pause", queue)
    principal.require("admin.queue.pause", queue)
    changed = context.admin.pause(existing(context, principal, queue))
    principal.done("paused" if changed else "already paused")
    return PauseResult(queue=queue, paused=True, changed=changed)


@router.post("/{queue}/resume", response_model=PauseResult, responses=errors(400, 404, 409),
             summary="Resume a queue")  # fmt: skip
def resume_queue(queue: QueueName, principal: Authenticated, context: Context) -> PauseResult:
    """Let workers take jobs from a paused queue again (`admin.queue.pause` on the queue)."""
    refuse_in_read_only(context, principal, "admin.queue.pause", queue)
    principal.require("admin.queue.pause", queue)
    changed = context.admin.resume(existing(context, principal, queue))
    principal.done("resumed" if changed else "already running")
    return PauseResult(queue=queue, paused=False, changed=changed)
