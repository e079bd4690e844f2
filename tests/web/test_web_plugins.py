"""The plugin manager over HTTP: the server's one plugin host, its plugins' states, approvals
(never wider than the token), enable, disable, reload and revoke."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rwq.plugins.trust.audit import read
from rwq.web.server import WebServer
from web_fixtures import ErrorOf

COUNTER = Path(__file__).parents[1] / "tui" / "fixtures" / "counter"


@pytest.fixture
def server(plugin_web: Callable[..., WebServer]) -> Callable[..., WebServer]:
    """``server()``: a server hosting the counter plugin, nothing granted."""
    return lambda: plugin_web("counter", granted=False)


def _client(web: WebServer, name: str, *permissions: str, queues: tuple[str, ...] = ("*",)):
    _, secret = web.context.tokens.create(name, permissions, queues)
    return httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {secret}"})


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_approve_then_disable_enable_reload_and_revoke(
    server: Callable[..., WebServer], error_of: ErrorOf
) -> None:
    web = server()
    admin = _client(web, "admin", "observer", "system.config.read", "system.plugins.manage")
    (approval,) = admin.get("/api/v1/approvals").json()["approvals"]
    assert (approval["plugin"], approval["pending"]) == (
        "counter", ["storage.read", "ui.notifications"]
    )  # fmt: skip
    (plugin,) = admin.get("/api/v1/plugins").json()["plugins"]
    assert (plugin["name"], plugin["state"]) == ("counter", "awaiting_approval")
    assert admin.post("/api/v1/approvals/counter/approve", json={}).status_code == 200

    def state() -> str:
        return str(admin.get("/api/v1/plugins").json()["plugins"][0]["state"])

    _until(lambda: state() == "active")
    disabled = admin.post("/api/v1/plugins/counter/disable").json()
    assert disabled["state"] == "disabled" and "token:admin" in disabled["reason"]
    assert admin.post("/api/v1/plugins/counter/enable").status_code == 200
    _until(lambda: state() == "active")
    reloaded = admin.post("/api/v1/plugins/counter/reload").json()
    assert reloaded["plugin"] == "counter" and "reload" in reloaded["message"]
    revoked = admin.post("/api/v1/plugins/counter/grants/revoke", json={}).json()
    assert revoked == {"plugin": "counter", "revoked": ["storage.read", "ui.notifications"]}
    assert error_of(admin.post("/api/v1/plugins/ghost/disable"), 404)["code"] == "not_found"
    assert error_of(admin.post("/api/v1/approvals/counter/deny", json={}), 409)["code"]
    web.context.audit.flush()
    grants = read(web.context.audit.path, kinds=["grant"])
    (grant,) = grants
    assert (grant.plugin, grant.operation) == ("counter", "storage.read,ui.notifications")
    assert grant.reason.startswith("by token:admin ")
    actions = read(web.context.audit.path, kinds=["action"])
    assert [(r.plugin, r.operation.rsplit("/", 1)[-1], r.resource) for r in actions] == [
        ("token:admin", action, "counter") for action in ("disable", "enable", "reload")
    ]
    checks = read(web.context.audit.path, plugin="token:admin", routine=True)
    (check,) = [r for r in checks if r.operation.endswith("/grants/revoke")]
    assert check.resource == "counter"


def test_revoked_permissions_are_asked_for_again_on_reload(
    server: Callable[..., WebServer],
) -> None:
    web = server()
    admin = _client(web, "admin", "observer", "system.config.read", "system.plugins.manage")
    admin.post("/api/v1/approvals/counter/approve", json={})
    _until(lambda: admin.get("/api/v1/plugins").json()["plugins"][0]["state"] == "active")
    revoke = {"permissions": ["storage.read"]}
    assert admin.post("/api/v1/plugins/counter/grants/revoke", json=revoke).json()["revoked"] == [
        "storage.read"
    ]
    assert admin.get("/api/v1/approvals").json()["approvals"] == []
    reloaded = admin.post("/api/v1/plugins/counter/reload").json()
    assert "awaits approval of storage.read" in reloaded["message"]
    (approval,) = admin.get("/api/v1/approvals").json()["approvals"]
    assert (approval["pending"], approval["update"]) == (["storage.read"], True)
    assert admin.post("/api/v1/approvals/counter/approve", json={}).status_code == 200
    _until(lambda: not admin.get("/api/v1/approvals").json()["approvals"])
    (plugin,) = admin.get("/api/v1/plugins").json()["plugins"]
    assert plugin["state"] == "active" and "storage.read" in plugin["permissions"]["granted"]


def test_a_token_never_grants_more_than_it_holds(
    server: Callable[..., WebServer], error_of: ErrorOf
) -> None:
    web = server()
    manager = _client(web, "manager", "system.plugins.manage", "system.config.read")
    error = error_of(manager.post("/api/v1/approvals/counter/approve", json={}), 403)
    assert error["permission"] in ("storage.read", "ui.notifications")
    viewer = _client(web, "viewer", "system.config.read")
    assert viewer.get("/api/v1/plugins").status_code == 200
    error = error_of(viewer.post("/api/v1/approvals/counter/deny", json={}), 403)
    assert error["permission"] == "system.plugins.manage"
    denied = manager.post("/api/v1/approvals/counter/deny", json={"permissions": ["storage.read"]})
    assert denied.status_code == 200


def test_without_a_plugin_host_the_plugin_routes_say_so(
    web: WebServer, make_token: Callable[..., str], error_of: ErrorOf
) -> None:
    secret = make_token("admin", "system.config.read")
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert error_of(c.get("/api/v1/plugins"), 503)["code"] == "no_plugin_host"
