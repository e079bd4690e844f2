"""``/api/v1/panels`` and ``/api/v1/plugins/{name}/input``: the plugin panels of the server's
one plugin host as HTML, and the clicks on their buttons, list items and table rows.

A panel shows what its plugin reads of every queue it was granted, so seeing panels needs
``admin.stats.read`` on every queue. A click makes the plugin act with its own grants, so a
token may click only on a plugin whose every granted permission it holds itself (queue-scoped
ones on every queue): a token never acts through a plugin beyond its own rights. A click names
a target the panel's latest frame has; anything else is refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from rwq.plugins.contract.ui import button_input, key_input, select_input
from rwq.web.access import Principal
from rwq.web.api.common import API_PREFIX, errors
from rwq.web.auth import Authenticated
from rwq.web.context import WebContext, web_context
from rwq.web.errors import ApiError
from rwq.web.live import LiveFeed
from rwq.web.models import PLUGIN_PATTERN, InputResult, JsonBody, PanelInput, PanelList, PanelOut
from rwq.web.panel_html import PanelHtml

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["panels"], default_response_class=JsonBody)
Context = Annotated[WebContext, Depends(web_context)]
PluginName = Annotated[str, Path(pattern=PLUGIN_PATTERN, description="A plugin's name.")]
VIEW = "admin.stats.read"


def _feed(context: WebContext) -> LiveFeed:
    if context.host is None or context.live is None:
        raise ApiError(
            503, "no_plugin_host", "this server hosts no plugins (started with --no-plugins)"
        )
    return context.live


def require_panels(principal: Principal) -> None:
    """Allow seeing plugin panels, or a 403: ``admin.stats.read`` on every queue."""
    principal.require(VIEW, None)


@router.get("/panels", response_model=PanelList, responses=errors(503), summary="Plugin panels")
def list_panels(principal: Authenticated, context: Context) -> PanelList:
    """The latest frame of every plugin panel, as HTML (`admin.stats.read` on every
    queue). Panels are drawn while a stream (`GET /api/v1/stream`) that sees them is open,
    and for a minute after this request; their changes come on the stream. When none were
    being drawn, this request waits up to two seconds for their first frames."""
    require_panels(principal)
    feed = _feed(context)
    feed.lease_panels()
    with feed.lock:
        updates = sorted(feed.panels.values(), key=lambda u: u.plugin)
    return PanelList(panels=[PanelOut.model_validate(u.data) for u in updates])


@router.post("/plugins/{name}/input", response_model=InputResult,
             responses=errors(404, 409, 503), summary="Click on a plugin panel")  # fmt: skip
def panel_input(
    name: PluginName, body: PanelInput, principal: Authenticated, context: Context
) -> InputResult:
    """Press a panel's button, choose an item of its list or a row of its table, or press a
    key while the panel has the focus: the plugin's `on_input` gets it. Needs
    `admin.stats.read` on every queue and every permission the plugin was granted (each
    queue-scoped one on every queue)."""
    require_panels(principal)
    feed = _feed(context)
    host = feed.host
    assert host is not None
    if name not in host.plugins():
        raise ApiError(404, "not_found", f"no plugin {name!r} on this server", argument="name")
    for permission in sorted(host.permissions(name).granted):
        principal.require(permission)  # queue-scoped: on every queue
    feed.lease_panels()  # a program's clicks keep the panels drawn, as a stream does
    with feed.lock:
        update = feed.panels.get(name)
    view = update.view if update is not None else None
    if view is None:
        raise ApiError(409, "no_panel", f"plugin {name!r} shows no panel now", argument="name")
    event = _event(view, body)
    changed = host.on_input(name, event)
    principal.done(_what(event))
    return InputResult(plugin=name, changed=changed)


def _what(event: dict[str, Any]) -> str:
    """The audit line of an input: ``button 'reset'``, ``select 'hosts' item 3``,
    ``key 'r'``."""
    if event["kind"] == "key":
        return f"key {event['key']!r}"
    if event["kind"] == "button":
        return f"button {event['id']!r}"
    return f"select {event['id']!r} item {event['index']}"


def _event(view: PanelHtml, body: PanelInput) -> dict[str, Any]:
    """The ``on_input`` event of a click or key on ``view``, or a 409 when the panel has no
    such target (a key is always delivered: the plugin decides what it means)."""
    if body.kind == "key":
        if body.key is None:
            raise ApiError(422, "invalid_argument", "a key input needs `key`", argument="key")
        button = next((t for t in view.targets if t.kind == "button" and t.key == body.key), None)
        return button_input(button.id) if button is not None else key_input(body.key)
    target = view.find(body.kind, body.id, body.index)
    if target is None:
        raise ApiError(
            409,
            "no_such_target",
            f"the panel shows no {body.kind} {body.id!r} at index {body.index} now",
            argument="id",
        )
    if target.kind == "button":
        return button_input(target.id)
    return select_input(target.id, target.index, target.value)
