"""Who may call the API: 401 without a current token, 403 outside its permissions or queues,
read-only mode, every decision audited as ``token:<name>``; browser sessions and CSRF."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from rwq.plugins.trust.audit import AuditRecord, read
from rwq.queue.producer import JobSpec, Producer
from rwq.web.server import WebServer
from rwq.web.sessions import CSRF_HEADER, SESSION_COOKIE
from web_fixtures import Api, ErrorOf, Kill, MakeToken


def _audit(web: WebServer, actor: str) -> list[AuditRecord]:
    assert web.context.audit is not None
    web.context.audit.flush()
    return read(web.context.audit.path, plugin=actor)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer nope", "Bearer rwq_ghost.secret",
     "Bearer rwq_bad name.x"],
)  # fmt: skip
def test_no_or_a_bad_token_is_a_401(web: WebServer, error_of: ErrorOf, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.get(f"{web.url}/api/v1/queues", headers=headers)
    error = error_of(response, 401)
    assert error["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == 'Bearer realm="rwq"'


def test_a_wrong_secret_is_a_401_and_audited(
    web: WebServer, make_token: MakeToken, api: Api, error_of: ErrorOf
) -> None:
    secret = make_token("ci", "observer")
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    error = error_of(api(forged).get("/api/v1/queues"), 401)
    assert "unknown or revoked" in error["message"]
    (record,) = _audit(web, "token:ci")
    assert (record.operation, record.allowed) == ("authenticate:GET /api/v1/queues", False)


def test_a_missing_permission_is_a_403_naming_it(
    make_token: MakeToken, api: Api, producer: Producer, error_of: ErrorOf
) -> None:
    producer.enqueue("q", 1)
    client = api(make_token("viewer", "admin.stats.read"))
    assert client.get("/api/v1/queues/q").status_code == 200
    error = error_of(client.get("/api/v1/queues/q/jobs"), 403)
    assert (error["permission"], error["queue"]) == ("admin.queue.peek", "q")
    assert "'admin.queue.peek'" in error["message"] and "'q'" in error["message"]
    assert error_of(client.get("/api/v1/workers"), 403)["permission"] == "admin.system.stats"
    assert error_of(client.get("/api/v1/audit"), 403)["permission"] == "system.config.read"
    error = error_of(client.post("/api/v1/queues/q/purge", json={"target": "dead"}), 403)
    assert error["permission"] == "admin.queue.purge"


def test_a_level_grants_its_non_sensitive_permissions_only(
    make_token: MakeToken, api: Api, producer: Producer, error_of: ErrorOf
) -> None:
    producer.enqueue("q", 1)
    client = api(make_token("admin", "administrator"))
    assert client.post("/api/v1/queues/q/pause").status_code == 200
    error = error_of(client.post("/api/v1/queues/q/purge", json={"target": "dead"}), 403)
    assert error["permission"] == "admin.queue.purge"  # sensitive: named, never by a level


def test_queue_globs_limit_what_a_token_sees_and_touches(
    make_token: MakeToken, api: Api, producer: Producer, kill: Kill, error_of: ErrorOf
) -> None:
    mine = producer.enqueue("tenant.a", 1)
    theirs = producer.enqueue("other", 2)
    kill("other", [theirs])
    client = api(make_token("tenant", "observer", "admin.queue.peek", "admin.queue.requeue",
                            queues=("tenant.*",)))  # fmt: skip
    assert [q["queue"] for q in client.get("/api/v1/queues").json()["queues"]] == ["tenant.a"]
    assert error_of(client.get("/api/v1/queues/other"), 403)["queue"] == "other"
    assert client.get(f"/api/v1/jobs/{mine.id}").json()["queue"] == "tenant.a"
    assert error_of(client.get(f"/api/v1/jobs/{theirs.id}"), 404)["code"] == "not_found"
    error = error_of(client.get("/api/v1/dead-letters"), 403)
    assert "outside the token's queues (tenant.*)" in error["message"]
    assert client.get("/api/v1/dead-letters", params={"queue": "tenant.*"}).json()["total"] == 0
    error_of(client.get("/api/v1/dead-letters", params={"queue": "*"}), 403)
    error = error_of(
        client.post("/api/v1/dead-letters/requeue", json={"ids": [theirs.id], "queue": "other"}),
        403,
    )
    assert (error["permission"], error["queue"]) == ("admin.queue.requeue", "other")
    error = error_of(
        client.post("/api/v1/dead-letters/requeue",
                    json={"all": True, "queue": "tenant.a", "to": "other"}),
        403,
    )  # fmt: skip
    assert error["queue"] == "other"


def test_one_dead_letter_needs_only_the_single_requeue_permission(
    make_token: MakeToken, api: Api, producer: Producer, kill: Kill, error_of: ErrorOf
) -> None:
    jobs = producer.enqueue_many("q", [1, 2])
    kill("q", jobs)
    client = api(make_token("op", "operator"))
    one = client.post("/api/v1/dead-letters/requeue", json={"ids": [jobs[0].id], "queue": "q"})
    assert one.json() == {"requeued": 1}
    error = error_of(client.post("/api/v1/dead-letters/requeue", json={"all": True}), 403)
    assert error["permission"] == "admin.queue.requeue"


def test_an_expired_token_is_a_401(
    web: WebServer, make_token: MakeToken, api: Api, error_of: ErrorOf
) -> None:
    secret = make_token("brief", "observer", expires_in=60)
    client = api(secret)
    assert client.get("/api/v1/queues").status_code == 200
    web.context.tokens.clock = lambda: 4_000_000_000.0
    error = error_of(client.get("/api/v1/queues"), 401)
    assert "token 'brief' expired at" in error["message"]


def test_a_revoked_token_is_a_401_at_once(
    web: WebServer, make_token: MakeToken, api: Api, error_of: ErrorOf
) -> None:
    client = api(make_token("gone", "observer"))
    assert client.get("/api/v1/queues").status_code == 200
    web.context.tokens.revoke("gone")
    assert "unknown or revoked" in error_of(client.get("/api/v1/queues"), 401)["message"]


def test_read_only_mode_refuses_every_write(
    make_web: Callable[..., WebServer], producer: Producer, error_of: ErrorOf
) -> None:
    producer.enqueue("q", 1)
    web = make_web(read_only=True)
    _, secret = web.context.tokens.create("root", ["system", "admin.queue.purge"])
    client = httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {secret}"})
    with client:
        assert client.get("/api/v1/queues/q").status_code == 200
        for path, body in [
            ("/api/v1/queues/q/pause", None),
            ("/api/v1/queues/q/resume", None),
            ("/api/v1/queues/q/purge", {"target": "pending"}),
            ("/api/v1/dead-letters/requeue", {"all": True}),
            ("/api/v1/dead-letters/delete", {"queue": "q", "ids": ["x"]}),
        ]:
            error = error_of(client.post(path, json=body), 409)
            assert error["code"] == "read_only" and "read-only mode" in error["message"]
        assert client.get("/api/v1/queues/q").json()["pending"] == 1
    denied = [r for r in _audit(web, "token:root") if not r.allowed]
    assert {r.reason for r in denied} == {"read-only mode"}


def test_every_decision_is_audited_as_the_token(
    web: WebServer, make_token: MakeToken, api: Api, producer: Producer
) -> None:
    producer.enqueue("q", 1)
    client = api(make_token("auditor", "admin.stats.read"))
    client.get("/api/v1/queues/q")
    client.get("/api/v1/queues/q/jobs")
    records = _audit(web, "token:auditor")
    assert [(r.operation, r.resource, r.allowed) for r in records] == [
        ("admin.stats.read:GET /api/v1/queues/{queue}", "q", True),
        ("admin.queue.peek:GET /api/v1/queues/{queue}/jobs", "q", False),
    ]
    assert records[1].reason == "not granted"


def test_what_an_allowed_request_did_is_audited_with_its_target(
    web: WebServer, make_token: MakeToken, api: Api, producer: Producer, kill: Kill
) -> None:
    jobs = producer.enqueue_many("t.a", [JobSpec(n, tenant="acme") for n in range(3)])
    kill("t.a", jobs, error="timeout")
    client = api(make_token("ops", "administrator", "admin.queue.requeue", "admin.queue.purge"))
    requeue = {"all": True, "queue": "t.*", "tenant": "acme", "error": "time", "to": "t.b"}
    assert client.post("/api/v1/dead-letters/requeue", json=requeue).json() == {"requeued": 3}
    assert client.post("/api/v1/queues/t.b/pause").json()["changed"] is True
    assert client.post("/api/v1/queues/t.b/purge", json={"target": "pending"}).status_code == 200
    chosen = {"queue": "t.a", "ids": ["nope"]}
    assert client.post("/api/v1/dead-letters/delete", json=chosen).json() == {"deleted": 0}
    actions = [r for r in _audit(web, "token:ops") if r.kind == "action"]
    assert [(r.operation, r.resource, r.reason) for r in actions] == [
        ("POST /api/v1/dead-letters/requeue", "t.*",
         "requeued 3 dead letters matching tenant 'acme' and error containing 'time' to t.b"),
        ("POST /api/v1/queues/{queue}/pause", "t.b", "paused"),
        ("POST /api/v1/queues/{queue}/purge", "t.b", "purged 3 pending jobs"),
        ("POST /api/v1/dead-letters/delete", "t.a", "deleted 0 of 1 chosen dead letter"),
    ]  # fmt: skip
    shown = api(make_token("reader", "system.config.read")).get(
        "/api/v1/audit", params={"kind": "action"}
    )
    assert [r["reason"] for r in shown.json()["records"]][-1].startswith("deleted 0 of 1")


def test_a_session_cookie_needs_its_csrf_token_on_unsafe_methods(
    web: WebServer, make_token: MakeToken, producer: Producer, error_of: ErrorOf
) -> None:
    producer.enqueue("q", 1)
    secret = make_token("browser", "observer", "administrator")
    with httpx.Client(base_url=web.url) as browser:
        login = browser.post("/api/v1/session", json={"token": secret})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"]
        assert f"{SESSION_COOKIE}=" in cookie
        assert {"httponly", "samesite=strict", "path=/"} <= {
            part.strip().lower() for part in cookie.split(";")
        }
        csrf = login.json()["csrf_token"]
        assert browser.get("/api/v1/session").json()["token"] == "browser"
        assert browser.get("/api/v1/queues/q").status_code == 200
        assert error_of(browser.post("/api/v1/queues/q/pause"), 403)["code"] == "csrf"
        wrong = browser.post("/api/v1/queues/q/pause", headers={CSRF_HEADER: "x" * 43})
        assert error_of(wrong, 403)["code"] == "csrf"
        right = browser.post("/api/v1/queues/q/pause", headers={CSRF_HEADER: csrf})
        assert right.json()["changed"] is True
        web.context.tokens.revoke("browser")
        assert error_of(browser.get("/api/v1/queues/q"), 401)["code"] == "unauthorized"


def test_a_session_ends_when_logged_out_or_its_token_is_replaced(
    web: WebServer, make_token: MakeToken, error_of: ErrorOf
) -> None:
    secret = make_token("browser", "observer")
    with httpx.Client(base_url=web.url) as browser:
        csrf = browser.post("/api/v1/session", json={"token": secret}).json()["csrf_token"]
        web.context.tokens.revoke("browser")
        make_token("browser", "system")  # the same name, a new secret: no inherited session
        assert error_of(browser.get("/api/v1/session"), 401)["code"] == "unauthorized"
        browser.cookies.clear()
        fresh = make_token("other", "observer")
        csrf = browser.post("/api/v1/session", json={"token": fresh}).json()["csrf_token"]
        assert browser.delete("/api/v1/session", headers={CSRF_HEADER: csrf}).status_code == 204
        assert error_of(browser.get("/api/v1/session"), 401)["code"] == "unauthorized"
    logins = [(r.kind, r.reason) for r in _audit(web, "token:other")]
    assert logins == [("check", "logged in"), ("action", "logged out")]


def test_a_bad_token_gets_no_session(web: WebServer, error_of: ErrorOf) -> None:
    login = httpx.post(f"{web.url}/api/v1/session", json={"token": "rwq_x.y"})
    assert error_of(login, 401)["code"] == "unauthorized"
    assert "set-cookie" not in login.headers
    assert error_of(httpx.post(f"{web.url}/api/v1/session", json={}), 422)["argument"] == "token"


def test_a_login_or_a_change_from_another_origin_is_refused(
    web: WebServer, make_token: MakeToken, producer: Producer, error_of: ErrorOf
) -> None:
    producer.enqueue("q", 1)
    secret = make_token("browser", "administrator")
    with httpx.Client(base_url=web.url) as browser:
        evil = {"Origin": "https://evil.example"}
        login = browser.post("/api/v1/session", json={"token": secret}, headers=evil)
        assert error_of(login, 403)["code"] == "cross_origin"
        assert "set-cookie" not in login.headers
        own = {"Origin": web.url}
        csrf = browser.post("/api/v1/session", json={"token": secret}, headers=own).json()
        headers = {**evil, CSRF_HEADER: csrf["csrf_token"]}
        error = error_of(browser.post("/api/v1/queues/q/pause", headers=headers), 403)
        assert error["code"] == "cross_origin"
        headers = {**own, CSRF_HEADER: csrf["csrf_token"]}
        assert browser.post("/api/v1/queues/q/pause", headers=headers).status_code == 200
