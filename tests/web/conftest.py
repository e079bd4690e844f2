"""Web fixtures: ``rwq web`` served by uvicorn on 127.0.0.1 (a free port) over the session's
Valkey, tokens, and HTTP clients that carry them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from rwq.config import Settings
from rwq.host.build import HostOptions, build_host
from rwq.queue.broker import Broker, Failure
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.web.server import WebServer
from web_fixtures import Api, ErrorOf, Kill, MakeToken


@pytest.fixture
def broker(redis_client: redis.Redis, settings: Settings) -> Broker:
    return Broker(redis_client, settings)


@pytest.fixture
def producer(broker: Broker) -> Producer:
    return Producer(broker)


@pytest.fixture
def make_web(redis_client: redis.Redis, settings: Settings) -> Iterator[Callable[..., WebServer]]:
    """Start servers (``make_web(read_only=True)`` changes settings); all stopped after."""
    started: list[WebServer] = []

    def make(**changes: Any) -> WebServer:
        changed = settings.replace(**changes)
        server = WebServer(changed, Broker(redis_client, changed), port=0).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def web(make_web: Callable[..., WebServer]) -> WebServer:
    return make_web()


@pytest.fixture
def make_token(web: WebServer) -> MakeToken:
    """``make_token("name", "perm", ..., queues=("tenant.*",), expires_in=None)``: the
    secret text of a new token."""

    def make(
        name: str, *permissions: str, queues: tuple[str, ...] = ("*",), expires_in: Any = None
    ) -> str:
        return web.context.tokens.create(name, permissions, queues, expires_in)[1]

    return make


@pytest.fixture
def api(web: WebServer) -> Iterator[Api]:
    """``api(secret)``: a client of the server sending that token (``api()``: none)."""
    clients: list[httpx.Client] = []

    def make(secret: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        client = httpx.Client(base_url=web.url, headers=headers, timeout=30)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def kill(broker: Broker) -> Kill:
    """``kill(queue, jobs, error="boom")``: dead-letter ``jobs`` (enqueued on ``queue``) as a
    worker's permanent failure."""

    def dead_letter(queue: str, jobs: list[Job], error: str = "boom") -> None:
        taken = broker.fetch(queue, "w-test", len(jobs)).jobs
        assert {j.id for j in taken} == {j.id for j in jobs}
        broker.fail(queue, "w-test", [Failure(j.id, 1.0, error, permanent=True) for j in jobs])

    return dead_letter


@pytest.fixture
def error_of() -> ErrorOf:
    """``error_of(response, status)``: the error object of ``response``, checked to be the
    API's JSON error shape with ``status``."""

    def check(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"error"}
        assert {"code", "message"} <= set(body["error"])
        error: dict[str, Any] = body["error"]
        return error

    return check


PLUGIN_FIXTURES = Path(__file__).parents[1] / "tui" / "fixtures"
GRANTS = {"counter": "[ui.notifications, storage.read]", "hostile-text": "[ui.notifications]"}


@pytest.fixture
def plugin_web(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Callable[..., WebServer]]:
    """``plugin_web("counter", ..., granted=True)``: a server hosting those test plugins
    (``tests/tui/fixtures``), granted what they ask by a policy unless ``granted=False``."""
    started: list[WebServer] = []

    def make(*names: str, granted: bool = True) -> WebServer:
        root = tmp_path / "plugins"
        for name in names:
            shutil.copytree(PLUGIN_FIXTURES / name, root / name)
        policy = None
        if granted:
            policy = tmp_path / "policy.yaml"
            lines = [f"  {name}:\n    grant: {GRANTS[name]}\n" for name in names]
            policy.write_text("plugins:\n" + "".join(lines), encoding="utf-8")
        hosted = settings.replace(plugin_dirs=str(root))
        host = build_host(hosted, redis_client, HostOptions(watch=False, policy_path=policy))
        server = WebServer(hosted, Broker(redis_client, hosted), port=0, plugin_host=host)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()
