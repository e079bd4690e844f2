"""``/api/v1/workers`` and ``/api/v1/audit``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from rwq.plugins.trust import audit as audit_log
from rwq.web.api.common import API_PREFIX, errors
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.models import AuditPage, AuditRecordOut, JsonBody, WorkerList, WorkerOut

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["system"], default_response_class=JsonBody)
Context = Annotated[WebContext, Depends(web_context)]
AuditKind = Literal[
    "check", "grant", "revoke", "deny", "forget", "policy", "action", "dropped"
]  # fmt: skip


@router.get("/workers", response_model=WorkerList, responses=errors(), summary="Workers")
def list_workers(principal: Authenticated, context: Context) -> WorkerList:
    """Every registered worker: host, queues, state, heartbeat, counts and running jobs
    (`admin.system.stats`)."""
    principal.require("admin.system.stats")
    workers = [WorkerOut(**asdict(w)) for w in context.admin.workers()]
    return WorkerList(workers=workers)


@router.get("/audit", response_model=AuditPage, responses=errors(), summary="The audit log")
def read_audit(
    principal: Authenticated,
    context: Context,
    actor: Annotated[
        str | None,
        Query(max_length=128, description=("Only records of this plugin or `token:<name>`.")),
    ] = None,
    denied_only: Annotated[bool, Query(description="Only refusals.")] = False,
    since: Annotated[
        float | None, Query(ge=0, description=("Only records at or after this Unix time."))
    ] = None,
    kind: Annotated[list[AuditKind] | None, Query(description="Only these kinds.")] = None,
    routine: Annotated[
        bool, Query(description=("With false, no allowed capability checks (most of a busy log)."))
    ] = True,
    limit: Annotated[int, Query(ge=1, le=10_000, description="The last this many.")] = 200,
) -> AuditPage:
    """The audit log of this server's state dir, oldest first: plugins' checks, grants and
    denials, and every API call (`system.config.read`)."""
    principal.require("system.config.read")
    if context.audit is not None:
        context.audit.flush()
    path = context.audit.path if context.audit else audit_log.audit_path(context.settings)
    records = audit_log.read(
        path, plugin=actor, denied_only=denied_only, since=since, kinds=kind, limit=limit,
        routine=routine,
    )  # fmt: skip
    return AuditPage(records=[AuditRecordOut(**r.to_dict()) for r in records])
