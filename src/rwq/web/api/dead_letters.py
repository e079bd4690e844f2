"""``/api/v1/dead-letters``: the dead letters with the TUI's filters, and requeueing them."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rwq.queue.admin import Admin
from rwq.units import counted
from rwq.web.access import Principal
from rwq.web.api.common import API_PREFIX, errors, refuse_in_read_only
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.models import (
    QUEUE_GLOB_PATTERN,
    DeadLetterPage,
    DeleteRequest,
    DeleteResult,
    JobOut,
    JsonBody,
    RequeueRequest,
    RequeueResult,
)

__all__ = ["router"]

router = APIRouter(
    prefix=f"{API_PREFIX}/dead-letters", tags=["dead letters"], default_response_class=JsonBody
)
Context = Annotated[WebContext, Depends(web_context)]
MAX_FILTERED = 100_000
"""The most dead letters one filtered requeue moves."""
_PAGE = 1000


@router.get("", response_model=DeadLetterPage, responses=errors(400, 404),
            summary="Dead letters, filtered")  # fmt: skip
def list_dead_letters(
    principal: Authenticated,
    context: Context,
    queue: Annotated[
        str | None,
        Query(
            pattern=QUEUE_GLOB_PATTERN,
            description=(
                "Only this queue's, or those of the queues a glob (`tenant.*`) matches; without it "
                "every queue (a token limited to some queues must give one)."
            ),
        ),
    ] = None,
    tenant: Annotated[str | None, Query(max_length=128, description="Only this tenant's.")] = None,
    error: Annotated[
        str | None,
        Query(max_length=256, description=("Only those whose error contains this (any case).")),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Skip this many.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 50,
) -> DeadLetterPage:
    """Dead letters, newest first (`admin.queue.peek` on `queue`)."""
    principal.require("admin.queue.peek", queue)
    page = context.admin.dlq_list(
        queue=queue, tenant=tenant, error=error, offset=offset, limit=limit
    )
    jobs = [JobOut(**job.to_dict()) for job in page.jobs]
    return DeadLetterPage(total=page.total, offset=offset, limit=limit, jobs=jobs)


@router.post("/requeue", response_model=RequeueResult, responses=errors(400, 404, 409),
             summary="Requeue dead letters")  # fmt: skip
def requeue_dead_letters(
    body: RequeueRequest, principal: Authenticated, context: Context
) -> RequeueResult:
    """Move dead letters back to pending: the given `ids`, or with `all` every one matching
    `queue`, `tenant` and `error`; to their own queue or to `to`. One dead letter of a named
    queue needs `admin.job.requeue` (or `admin.queue.requeue`); more need
    `admin.queue.requeue`; checked on `queue` and on `to`."""
    if bool(body.ids) == body.all:
        raise ApiError(400, "bad_argument", "give either ids or all=true", argument="ids")
    if not body.all and (body.tenant is not None or body.error is not None):
        raise ApiError(400, "bad_argument", "tenant and error filter only with all=true",
                       argument="tenant" if body.tenant is not None else "error")  # fmt: skip
    glob = body.queue is not None and any(c in body.queue for c in "*?")
    if glob and not body.all:
        raise ApiError(400, "bad_argument", "requeue by ids takes a queue name, not a glob",
                       argument="queue")  # fmt: skip
    permission = _permission(principal, body)
    refuse_in_read_only(context, principal, permission, body.queue)
    principal.require(permission, body.queue)
    if body.to is not None:
        principal.require(permission, body.to)
    admin = context.admin
    if not body.all:
        requeued = admin.requeue(body.ids, queue=body.queue, to=body.to)
    elif body.tenant is None and body.error is None and not glob:
        requeued = admin.requeue(all_jobs=True, queue=body.queue, to=body.to)
    else:
        requeued = _requeue_matching(admin, body)
    principal.done(_requeued(body, requeued), body.queue or "*")
    return RequeueResult(requeued=requeued)


@router.post("/delete", response_model=DeleteResult, responses=errors(400, 404, 409),
             summary="Delete chosen dead letters")  # fmt: skip
def delete_dead_letters(
    body: DeleteRequest, principal: Authenticated, context: Context
) -> DeleteResult:
    """Delete chosen dead letters of a queue permanently, in one atomic step
    (`admin.queue.purge` on the queue)."""
    refuse_in_read_only(context, principal, "admin.queue.purge", body.queue)
    principal.require("admin.queue.purge", body.queue)
    deleted = context.admin.delete_dead(body.queue, body.ids)
    principal.done(f"deleted {deleted} of {counted(len(body.ids), 'chosen dead letter')}",
                   body.queue)  # fmt: skip
    return DeleteResult(deleted=deleted)


_NAMED = 5
"""An audit line names the chosen dead letters when there are at most this many."""


def _requeued(body: RequeueRequest, count: int) -> str:
    """The audit line of a requeue: how many, which (the filter as given), and where to."""
    if not body.all:
        what = f"requeued {count} of {counted(len(body.ids), 'chosen dead letter')}"
        what += f" ({', '.join(body.ids)})" if len(body.ids) <= _NAMED else ""
    else:
        filters = [f"tenant {body.tenant!r}"] if body.tenant is not None else []
        filters += [f"error containing {body.error!r}"] if body.error is not None else []
        what = f"requeued {counted(count, 'dead letter')}" + (
            f" matching {' and '.join(filters)}" if filters else " (all)"
        )
    return what + (f" to {body.to}" if body.to is not None else "")


def _permission(principal: Principal, body: RequeueRequest) -> str:
    single = len(body.ids) == 1 and body.queue is not None and body.to is None
    if single and not principal.holds("admin.queue.requeue"):
        return "admin.job.requeue"
    return "admin.queue.requeue"


def _requeue_matching(admin: Admin, body: RequeueRequest) -> int:
    """Requeue every dead letter the filter matches, read first, then moved queue by queue."""
    by_queue: dict[str, list[str]] = defaultdict(list)
    offset = 0
    while offset < MAX_FILTERED:
        page = admin.dlq_list(
            queue=body.queue, tenant=body.tenant, error=body.error, offset=offset, limit=_PAGE
        )
        for job in page.jobs:
            by_queue[job.queue].append(job.id)
        offset += _PAGE
        if offset >= page.total:
            break
    return sum(admin.requeue(ids, queue=q, to=body.to) for q, ids in by_queue.items())
