"""The HTTP admin API, ``/api/v1``: one router per resource."""

from __future__ import annotations

from fastapi import APIRouter

from rwq.web.api import dead_letters, jobs, panels, plugins, queues, session, stream, system
from rwq.web.api.common import API_PREFIX

__all__ = ["API_PREFIX", "api_router"]


def api_router() -> APIRouter:
    """Every route of the API under :data:`API_PREFIX`."""
    router = APIRouter()
    for module in (queues, jobs, dead_letters, system, plugins, panels, stream, session):
        router.include_router(module.router)
    return router
