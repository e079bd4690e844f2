"""``/api/v1/jobs``: a job by id, wherever it is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from rwq.web.api.common import API_PREFIX, errors
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.lookup import find_job
from rwq.web.models import JOB_ID_PATTERN, JobOut

__all__ = ["router"]

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])
Context = Annotated[WebContext, Depends(web_context)]


@router.get("/{job_id}", response_model=JobOut, responses=errors(404), summary="A job by id")
def get_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The job's id.")],
    principal: Authenticated,
    context: Context,
) -> JobOut:
    """A job by id, looked for in every queue inside the token's queue scope
    (`admin.queue.peek`, checked on the queue it is found in). A job of a queue outside the
    scope is not found: the answer tells nothing of other queues."""
    queues = principal.visible(context.broker.queues())
    job = find_job(context.broker, job_id, queues) if principal.holds("admin.queue.peek") else None
    principal.require("admin.queue.peek", job.queue if job else None, listing=job is None)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id!r} in the token's queues",
                       argument="job_id")  # fmt: skip
    return JobOut(**job.to_dict())
