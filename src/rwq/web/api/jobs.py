"""``/api/v1/jobs``: a job by id, wherever it is, and cancelling it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from rwq.queue.cancel import JobNotFound, NotCancellable
from rwq.queue.job import Job
from rwq.web.access import Principal
from rwq.web.api.common import API_PREFIX, errors, refuse_in_read_only
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.lookup import find_job
from rwq.web.models import JOB_ID_PATTERN, QUEUE_PATTERN, CancelResult, JobOut, JsonBody

__all__ = ["router"]

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"], default_response_class=JsonBody)
Context = Annotated[WebContext, Depends(web_context)]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job's id.")]


@router.get("/{job_id}", response_model=JobOut, responses=errors(404), summary="A job by id")
def get_job(job_id: JobId, principal: Authenticated, context: Context) -> JobOut:
    """A job by id, looked for in every queue inside the token's queue scope
    (`admin.queue.peek`, checked on the queue it is found in). A job of a queue outside the
    scope is not found: the answer tells nothing of other queues."""
    return JobOut(**_find(principal, context, job_id, "admin.queue.peek").to_dict())


@router.post("/{job_id}/cancel", response_model=CancelResult, responses=errors(404, 409),
             summary="Cancel a job")  # fmt: skip
def cancel_job(
    job_id: JobId,
    principal: Authenticated,
    context: Context,
    queue: Annotated[
        str | None,
        Query(pattern=QUEUE_PATTERN, description="Its queue (default: looked for in each)."),
    ] = None,
) -> CancelResult:
    """Cancel a pending, scheduled or running job of a queue inside the token's scope
    (`admin.queue.purge` on its queue: the job is removed and never runs again). A running
    one's worker stops its handler. It ends `cancelled`; a job that has ended is a 409
    `not_cancellable`. A job id is unique within its queue: `queue` names the one meant."""
    refuse_in_read_only(context, principal, "admin.queue.purge", queue)
    job = _find(principal, context, job_id, "admin.queue.purge", queue)
    try:
        done = context.admin.cancel(job_id, queue=job.queue)
    except JobNotFound:  # gone since it was found
        raise ApiError(404, "not_found", f"no job {job_id!r} any more",
                       argument="job_id") from None  # fmt: skip
    except NotCancellable as exc:
        raise ApiError(409, "not_cancellable", str(exc), argument="job_id",
                       state=exc.state) from None  # fmt: skip
    principal.done(f"cancelled job {job_id} (was {done.was})", job.queue)
    return CancelResult(job_id=done.job_id, queue=done.queue, was=done.was, worker=done.worker)


def _find(
    principal: Principal,
    context: WebContext,
    job_id: str,
    permission: str,
    queue: str | None = None,
) -> Job:
    """The job ``job_id`` of a queue inside the token's scope (of ``queue`` when given),
    ``permission`` checked on its queue; a 404 when there is none, whether it is elsewhere
    or nowhere (the answer tells nothing of other queues)."""
    queues = [q for q in principal.visible(context.broker.queues()) if queue in (None, q)]
    job = find_job(context.broker, job_id, queues) if principal.holds(permission) else None
    principal.require(permission, job.queue if job else None, listing=job is None)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id!r} in the token's queues",
                       argument="job_id")  # fmt: skip
    return job
