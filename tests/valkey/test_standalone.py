"""Throwaway servers: loopback only, same port and data across restarts and crashes."""

from __future__ import annotations

from collections.abc import Callable

from rwq.valkey.standalone import StandaloneServer

MakeServer = Callable[..., StandaloneServer]


def test_listens_on_loopback_only(make_server: MakeServer) -> None:
    server = make_server()
    assert server.url == f"redis://127.0.0.1:{server.port}"
    with server.client(decode_responses=True) as client:
        assert client.config_get("bind") == {"bind": "127.0.0.1"}


def test_persistent_data_survives_restart_and_crash(make_server: MakeServer) -> None:
    server = make_server(persistence=True)
    port = server.port
    with server.client() as client:
        client.set("k", "v")
    server.restart()
    with server.client() as client:
        assert client.get("k") == b"v"
        client.config_set("appendfsync", "always")  # so the crash below loses nothing
        client.set("k2", "v2")
    server.kill()
    assert not server.running
    server.start()
    assert server.port == port
    with server.client() as client:
        assert client.mget("k", "k2") == [b"v", b"v2"]


def test_volatile_data_is_gone_after_restart(make_server: MakeServer) -> None:
    server = make_server()
    with server.client() as client:
        client.set("k", "v")
    server.restart()
    with server.client() as client:
        assert client.get("k") is None
