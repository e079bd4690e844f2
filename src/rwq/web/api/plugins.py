"""``/api/v1/plugins`` and ``/api/v1/approvals``: the plugin manager over the server's one
plugin host: states, enable, disable, reload, pending approvals (approve, deny) and grants
(revoke).

Reading needs ``system.config.read``, acting ``system.plugins.manage``. A token never widens
a grant: it approves only permissions it holds itself, and queue-scoped ones only when its own
queue scope is every queue (the plugin's scope comes from its manifest, not the token).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path

from rwq.plugins.trust.scope import QUEUE_SCOPED
from rwq.web.access import Principal
from rwq.web.api.common import API_PREFIX, errors
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.models import (
    PLUGIN_PATTERN,
    ApprovalList,
    ApprovalOut,
    DecisionRequest,
    DecisionResult,
    JsonBody,
    PluginList,
    PluginOut,
    PluginPermissions,
    ReloadResult,
    RevokeResult,
)

if TYPE_CHECKING:
    from rwq.host.local import LocalPluginHost

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["plugins"], default_response_class=JsonBody)
Context = Annotated[WebContext, Depends(web_context)]
PluginName = Annotated[str, Path(pattern=PLUGIN_PATTERN, description="A plugin's name.")]
READ = "system.config.read"
MANAGE = "system.plugins.manage"


def _host(context: WebContext) -> LocalPluginHost:
    if context.host is None:
        raise ApiError(
            503, "no_plugin_host", "this server hosts no plugins (started with --no-plugins)"
        )
    return context.host


def _plugin(host: LocalPluginHost, name: str) -> PluginOut:
    snapshot = next((s for s in host.snapshot() if s.name == name), None)
    if snapshot is None:
        raise ApiError(404, "not_found", f"no plugin {name!r} on this server", argument="name")
    return _out(host, snapshot.name, snapshot.version, snapshot.runtime,
                snapshot.state.value, snapshot.reason)  # fmt: skip


def _out(host: LocalPluginHost, name: str, version: str, runtime: str, state: str,
         reason: str) -> PluginOut:  # fmt: skip
    held = host.permissions(name)
    permissions = PluginPermissions(
        granted=sorted(held.granted), pending=sorted(held.pending), denied=sorted(held.denied)
    )
    return PluginOut(name=name, version=version, runtime=runtime, state=state, reason=reason,
                     permissions=permissions)  # fmt: skip


@router.get("/plugins", response_model=PluginList, responses=errors(503), summary="Plugins")
def list_plugins(principal: Authenticated, context: Context) -> PluginList:
    """Every plugin of the server's plugin host: state, why, permissions
    (`system.config.read`)."""
    principal.require(READ)
    host = _host(context)
    plugins = [
        _out(host, s.name, s.version, s.runtime, s.state.value, s.reason) for s in host.snapshot()
    ]
    return PluginList(plugins=plugins)


@router.post("/plugins/{name}/enable", response_model=PluginOut,
             responses=errors(404, 409, 503), summary="Enable a plugin")  # fmt: skip
def enable_plugin(name: PluginName, principal: Authenticated, context: Context) -> PluginOut:
    """Validate and load a disabled, unloaded or failed plugin (`system.plugins.manage`)."""
    principal.require(MANAGE)
    host = _host(context)
    _plugin(host, name)
    host.enable(name)
    out = _plugin(host, name)
    principal.done(f"enabled: {out.state}")
    return out


@router.post("/plugins/{name}/disable", response_model=PluginOut,
             responses=errors(404, 409, 503), summary="Disable a plugin")  # fmt: skip
def disable_plugin(name: PluginName, principal: Authenticated, context: Context) -> PluginOut:
    """Stop a plugin until it is enabled (`system.plugins.manage`)."""
    principal.require(MANAGE)
    host = _host(context)
    _plugin(host, name)
    host.disable(name, f"disabled by {principal.actor}")
    principal.done("disabled")
    return _plugin(host, name)


@router.post("/plugins/{name}/reload", response_model=ReloadResult,
             responses=errors(404, 409, 503), summary="Reload a plugin")  # fmt: skip
def reload_plugin(name: PluginName, principal: Authenticated, context: Context) -> ReloadResult:
    """Reload a plugin from its files as a save would: validation, grants bound to the
    bundle, probation and rollback (`system.plugins.manage`)."""
    principal.require(MANAGE)
    host = _host(context)
    _plugin(host, name)
    message = host.reload(name)
    principal.done(message)
    return ReloadResult(plugin=name, message=message, state=host.state(name).value)


@router.post("/plugins/{name}/grants/revoke", response_model=RevokeResult,
             responses=errors(404, 409, 503), summary="Revoke a plugin's grants")  # fmt: skip
def revoke_grants(
    name: PluginName, body: DecisionRequest, principal: Authenticated, context: Context
) -> RevokeResult:
    """Take permissions (all by default) from a plugin (`system.plugins.manage`)."""
    principal.require(MANAGE)
    host = _host(context)
    revoked = host.manager.revoke(name, body.permissions, revoked_by=principal.actor)
    return RevokeResult(plugin=name, revoked=sorted(revoked))


@router.get("/approvals", response_model=ApprovalList, responses=errors(503),
            summary="Pending approvals")  # fmt: skip
def list_approvals(principal: Authenticated, context: Context) -> ApprovalList:
    """Plugins (or new versions) waiting for a decision on their permissions
    (`system.config.read`)."""
    principal.require(READ)
    approvals = [
        ApprovalOut(
            plugin=a.plugin,
            version=a.version,
            update=a.update,
            pending=sorted(a.review.pending),
            granted=sorted(a.review.granted),
            denied=sorted(a.review.denied),
        )
        for a in _host(context).pending_approvals()
    ]
    return ApprovalList(approvals=approvals)


def _pending(host: LocalPluginHost, name: str) -> frozenset[str]:
    for approval in host.pending_approvals():
        if approval.plugin == name:
            return approval.review.pending
    raise ApiError(409, "conflict", f"nothing of plugin {name!r} awaits approval",
                   argument="name")  # fmt: skip


def _check_not_wider(principal: Principal, permissions: Iterable[str]) -> None:
    for permission in sorted(permissions):
        if not principal.holds(permission):
            principal.require(permission)  # audited, 403 naming it
        if permission in QUEUE_SCOPED and not principal.token.scope.all_queues:
            principal.record(permission, None, False, "token limited to some queues")
            raise ApiError(
                403, "forbidden",
                f"token {principal.token.name!r} is limited to queues "
                f"{', '.join(principal.token.queues)}: it cannot grant {permission!r}, which "
                "the plugin asked for on queues of its own",
                permission=permission,
            )  # fmt: skip


@router.post("/approvals/{name}/approve", response_model=DecisionResult,
             responses=errors(404, 409, 503), summary="Approve a plugin's permissions")  # fmt: skip
def approve(
    name: PluginName, body: DecisionRequest, principal: Authenticated, context: Context
) -> DecisionResult:
    """Grant the pending permissions of a plugin (or only `permissions`) as its manifest
    asked for them (`system.plugins.manage`, and every permission granted: a token never
    grants what it does not hold)."""
    principal.require(MANAGE)
    host = _host(context)
    pending = _pending(host, name)
    _check_not_wider(principal, body.permissions if body.permissions is not None else pending)
    state = host.manager.approve(name, body.permissions, granted_by=principal.actor)
    return DecisionResult(plugin=name, state=state.value)


@router.post("/approvals/{name}/deny", response_model=DecisionResult,
             responses=errors(404, 409, 503), summary="Deny a plugin's permissions")  # fmt: skip
def deny(
    name: PluginName, body: DecisionRequest, principal: Authenticated, context: Context
) -> DecisionResult:
    """Refuse the pending permissions of a plugin (or only `permissions`), remembered
    (`system.plugins.manage`)."""
    principal.require(MANAGE)
    host = _host(context)
    _pending(host, name)
    state = host.manager.deny(name, body.permissions, denied_by=principal.actor)
    return DecisionResult(plugin=name, state=state.value)
