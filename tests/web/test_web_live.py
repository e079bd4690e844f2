"""The live stream and the panels over HTTP: statistics inside the token's scope, plugin panels
drawn into HTML as they change, clicks on their targets, and who may see and click."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from rwq.queue.producer import Producer
from rwq.web import live as live_feed
from rwq.web.api import stream
from rwq.web.server import WebServer
from web_fixtures import ErrorOf, MakeToken

Event = tuple[str, dict[str, Any]]


class Stream:
    """A ``GET /api/v1/stream`` read on a thread; its events so far, in order."""

    def __init__(self, client: httpx.Client) -> None:
        self.events: list[Event] = []
        self.status: int | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(client,), daemon=True)
        self._stop = False
        self._thread.start()

    def _read(self, client: httpx.Client) -> None:
        with contextlib.suppress(httpx.HTTPError):  # the test closed the client: it is over
            self._follow(client)
        with self._changed:
            self._changed.notify_all()

    def _follow(self, client: httpx.Client) -> None:
        with client.stream("GET", "/api/v1/stream", timeout=60) as response:
            self.status = response.status_code
            kind = ""
            for line in response.iter_lines():
                if self._stop:
                    return
                if line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    with self._changed:
                        self.events.append((kind, json.loads(line[len("data: ") :])))
                        self._changed.notify_all()

    def wait_for(self, check: Callable[[Event], bool], timeout: float = 30) -> Event:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for event in self.events[seen:]:
                    if check(event):
                        return event
                seen = len(self.events)
                left = deadline - time.monotonic()
                assert left > 0, f"no such event in {[k for k, _ in self.events]}"
                self._changed.wait(left)

    @property
    def reading(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join(timeout=30)

    def close(self) -> None:
        self._stop = True
        self.join()


@pytest.fixture
def hosting(plugin_web: Callable[..., WebServer]) -> WebServer:
    """A server hosting the counter plugin, granted by a policy."""
    return plugin_web("counter")


@contextmanager
def streaming(web: WebServer, secret: str) -> Iterator[Stream]:
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {secret}"}) as client:
        reader = Stream(client)
        try:
            yield reader
        finally:
            client.close()
            reader.close()


def _token(web: WebServer, name: str, *permissions: str, queues: tuple[str, ...] = ("*",)) -> str:
    return web.context.tokens.create(name, permissions, queues)[1]


def _client(web: WebServer, secret: str) -> httpx.Client:
    return httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {secret}"})


def _panel(text: str) -> Callable[[Event], bool]:
    def check(event: Event) -> bool:
        kind, data = event
        return kind == "panel" and data["plugin"] == "counter" and text in (data["html"] or "")

    return check


def test_a_panel_comes_as_html_and_a_click_changes_it_live(
    hosting: WebServer, error_of: ErrorOf
) -> None:
    secret = _token(hosting, "ops", "observer")
    with streaming(hosting, secret) as live, _client(hosting, secret) as client:
        hello = live.wait_for(lambda e: e[0] == "hello")[1]
        assert hello["panels"] and hello["hosted"] and not hello["plugins"]
        _, first = live.wait_for(_panel("count=0"))
        assert first["title"] == "Counter" and first["state"] == "active"
        assert 'data-kind="button" data-id="inc"' in first["html"]
        (listed,) = client.get("/api/v1/panels").json()["panels"]
        assert listed["plugin"] == "counter" and "count=0" in listed["html"]

        pressed = client.post("/api/v1/plugins/counter/input", json={"kind": "button", "id": "inc"})
        assert pressed.json() == {"plugin": "counter", "changed": True}
        _, second = live.wait_for(_panel("count=1"))
        assert second["seq"] > first["seq"]
        chosen = client.post(
            "/api/v1/plugins/counter/input", json={"kind": "select", "id": "things", "index": 2}
        )
        assert chosen.status_code == 200
        live.wait_for(_panel("chosen=gamma"))  # the value comes from the panel, not the client

        typed = client.post("/api/v1/plugins/counter/input", json={"kind": "key", "key": "x"})
        assert typed.status_code == 200
        live.wait_for(_panel("keys=x"))
        client.post("/api/v1/plugins/counter/input", json={"kind": "key", "key": "i"})
        live.wait_for(_panel("count=2"))  # the key of the button "Add one" presses it
        bad_key = client.post(
            "/api/v1/plugins/counter/input", json={"kind": "key", "key": "ctrl+alt+delete"}
        )
        assert error_of(bad_key, 422)["argument"] == "key"
        no_key = client.post("/api/v1/plugins/counter/input", json={"kind": "key"})
        assert error_of(no_key, 422)["argument"] == "key"
        missing = client.post(
            "/api/v1/plugins/counter/input", json={"kind": "select", "id": "things", "index": 9}
        )
        assert error_of(missing, 409)["code"] == "no_such_target"
        forged = client.post("/api/v1/plugins/counter/input", json={"kind": "button", "id": "x"})
        assert error_of(forged, 409)["argument"] == "id"
        unknown = client.post("/api/v1/plugins/nope/input", json={"kind": "button", "id": "inc"})
        assert error_of(unknown, 404)["argument"] == "name"


def test_a_program_reads_the_panels_and_clicks_without_a_stream(hosting: WebServer) -> None:
    secret = _token(hosting, "script", "observer")
    with _client(hosting, secret) as client:
        (panel,) = client.get("/api/v1/panels").json()["panels"]  # waits for the first frame
        assert panel["plugin"] == "counter" and "count=0" in panel["html"]
        targets = [(t["kind"], t["id"], t["index"], t["label"]) for t in panel["targets"]]
        items = [("select", "things", i, name) for i, name in enumerate(("alpha", "beta", "gamma"))]
        assert targets == [*items, ("button", "inc", 0, "Add one")]
        button = panel["targets"][-1]
        assert button["key"] == "i"
        press = {"kind": button["kind"], "id": button["id"], "index": button["index"]}
        pressed = client.post("/api/v1/plugins/counter/input", json=press)
        assert pressed.json()["changed"] is True
        deadline = time.monotonic() + 15
        while "count=1" not in client.get("/api/v1/panels").json()["panels"][0]["html"]:
            assert time.monotonic() < deadline, "the click never showed on the panel"
            time.sleep(0.05)


def test_panels_read_after_the_lease_ran_out_are_fresh_for_every_request_at_once(
    hosting: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_feed, "PANEL_LEASE", 0.3)
    secret = _token(hosting, "script", "observer")
    with _client(hosting, secret) as client:
        assert len(client.get("/api/v1/panels").json()["panels"]) == 1
        time.sleep(0.6)  # the lease runs out: the panels are no longer drawn
        asked = time.time()
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda _: client.get("/api/v1/panels").json(), range(3)))
    for answer in answers:  # none answered before the drawing started again
        (panel,) = answer["panels"]
        assert panel["at"] >= asked and "count=0" in panel["html"]


def test_clicking_needs_every_permission_the_plugin_holds(
    hosting: WebServer, error_of: ErrorOf
) -> None:
    viewer = _token(hosting, "viewer", "admin.stats.read", "ui.notifications")
    with streaming(hosting, viewer) as live, _client(hosting, viewer) as client:
        live.wait_for(_panel("count=0"))
        refused = client.post("/api/v1/plugins/counter/input", json={"kind": "button", "id": "inc"})
        error = error_of(refused, 403)
        assert error["permission"] == "storage.read"


def test_a_token_limited_to_some_queues_sees_their_stats_and_no_panels(
    hosting: WebServer, error_of: ErrorOf
) -> None:
    producer = Producer(hosting.context.broker)
    producer.enqueue("tenant.a", {"n": 1})
    producer.enqueue("other", {"n": 2})
    secret = _token(hosting, "tenant", "observer", queues=("tenant.*",))
    with streaming(hosting, secret) as live, _client(hosting, secret) as client:
        hello = live.wait_for(lambda e: e[0] == "hello")[1]
        assert not hello["panels"]
        _, stats = live.wait_for(lambda e: e[0] == "stats")
        assert [q["queue"] for q in stats["queues"]] == ["tenant.a"]
        assert stats["queues"][0]["pending"] == 1
        assert error_of(client.get("/api/v1/panels"), 403)["permission"] == "admin.stats.read"
        time.sleep(0.5)
        assert not any(kind == "panel" for kind, _ in live.events)
    everything = _token(hosting, "all", "observer")
    with streaming(hosting, everything) as live:
        _, stats = live.wait_for(lambda e: e[0] == "stats")
        assert {"tenant.a", "other"} <= {q["queue"] for q in stats["queues"]}


def test_the_plugin_states_come_to_tokens_that_read_the_configuration(
    hosting: WebServer,
) -> None:
    secret = _token(hosting, "admin", "observer", "system.config.read", "system.plugins.manage")
    with streaming(hosting, secret) as live, _client(hosting, secret) as client:
        _, plugins = live.wait_for(lambda e: e[0] == "plugins")
        assert [(p["name"], p["state"]) for p in plugins["plugins"]] == [("counter", "active")]
        client.post("/api/v1/plugins/counter/disable")
        live.wait_for(lambda e: e[0] == "plugins" and e[1]["plugins"][0]["state"] == "disabled")
        live.wait_for(lambda e: e[0] == "panel" and e[1]["state"] == "disabled")


def test_a_revoked_token_is_told_and_its_stream_ends(
    hosting: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "RECHECK", 0.2)
    monkeypatch.setattr(stream, "KEEPALIVE", 0.2)
    secret = _token(hosting, "gone", "observer")
    with streaming(hosting, secret) as live:
        live.wait_for(lambda e: e[0] == "hello")
        hosting.context.tokens.revoke("gone")
        _, bye = live.wait_for(lambda e: e[0] == "bye")
        assert bye["reason"] == "token 'gone' was revoked"


def test_the_stream_needs_a_token_and_the_stats_permission(
    web: WebServer, make_token: MakeToken, error_of: ErrorOf
) -> None:
    assert error_of(httpx.get(f"{web.url}/api/v1/stream"), 401)["code"] == "unauthorized"
    secret = make_token("nothing", "storage.read")
    refused = httpx.get(f"{web.url}/api/v1/stream", headers={"Authorization": f"Bearer {secret}"})
    assert error_of(refused, 403)["permission"] == "admin.stats.read"
    observer = make_token("observer", "observer")
    with streaming(web, observer) as live:
        hello = live.wait_for(lambda e: e[0] == "hello")[1]
        assert not hello["hosted"] and not hello["panels"]
        live.wait_for(lambda e: e[0] == "stats")
    with _client(web, observer) as client:
        assert error_of(client.get("/api/v1/panels"), 503)["code"] == "no_plugin_host"


def test_stopping_the_server_ends_its_streams(web: WebServer, make_token: MakeToken) -> None:
    with streaming(web, make_token("watcher", "observer")) as live:
        live.wait_for(lambda e: e[0] == "hello")
        web.stop()  # it waits for every open connection: the stream must end by itself
        live.join()
        assert not live.reading
