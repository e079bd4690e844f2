"""``/api/v1/queues``: statistics, peeking at jobs, purge, pause and resume."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from rwq.queue.admin import UnknownQueue
from rwq.web.access import Principal
from rwq.web.api.common import API_PREFIX, errors, refuse_in_read_only
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.models import (
    QUEUE_PATTERN,
    JobList,
    JobOut,
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


@router.get("/{queue}/jobs", response_model=JobList, responses=errors(400, 404),
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
    principal.done(f"purged {purged} {body.target} jobs")
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
