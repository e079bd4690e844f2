"""The HTTP admin API, ``/api/v1``: one router per resource."""

from __future__ import annotations

from fastapi import APIRouter

from rwq.web.api import dead_letters, jobs, queues, session, system

__all__ = ["API_PREFIX", "api_router"]

API_PREFIX = "/api/v1"


def api_router() -> APIRouter:
    """Every route of the API under :data:`API_PREFIX`."""
    router = APIRouter(prefix=API_PREFIX)
    for module in (queues, jobs, dead_letters, system, session):
        router.include_router(module.router)
    return router
