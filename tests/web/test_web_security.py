"""Security headers on every response: API answers, errors, the schema; a bug answers a JSON
500 without a traceback."""

from __future__ import annotations

import httpx
import pytest

from rwq.queue.admin import Admin
from rwq.web.server import WebServer, is_loopback
from web_fixtures import Api, ErrorOf, MakeToken


def _check_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "server" not in response.headers


def test_every_response_has_the_security_headers(
    web: WebServer, make_token: MakeToken, api: Api
) -> None:
    client = api(make_token("ci", "observer"))
    for response in (
        client.get("/api/v1/queues"),
        client.get("/api/v1/queues/nope"),
        api().get("/api/v1/queues"),
        api().get("/nowhere"),
        api().get("/openapi.json"),
    ):
        _check_headers(response)
    assert client.get("/api/v1/queues").headers["cache-control"] == "no-store"


def test_a_bug_is_a_json_500_with_the_headers(
    web: WebServer, make_token: MakeToken, api: Api, error_of: ErrorOf,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    client = api(make_token("ci", "observer"))

    def broken(*_args: object) -> None:
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(Admin, "stats", broken)
    response = client.get("/api/v1/queues")
    error = error_of(response, 500)
    assert error == {"code": "internal", "message": "internal error; see the server log"}
    assert "Traceback" not in response.text and "injected" not in response.text
    _check_headers(response)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
     ("192.168.1.2", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
