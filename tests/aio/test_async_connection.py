"""The asyncio connection: the URLs and errors of :func:`rwq.connection.connect`, giving
``redis.asyncio`` clients (a cluster URL a ``redis.asyncio.cluster.RedisCluster``)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from rwq.aio import connect, connection
from rwq.aio.connection import is_cluster
from rwq.config import Settings
from rwq.errors import ConnectionFailed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect(url: str, tmp_path: Path) -> None:
    async def main() -> None:
        client = await connect(Settings(redis_url=url, state_dir=tmp_path))
        await client.aclose()

    asyncio.run(main())


def test_connect_to_a_url(settings: Settings) -> None:
    async def main() -> tuple[bool, object, object]:
        client = await connect(settings)
        raw = await connect(settings, decode_responses=False)
        try:
            await client.set("k", "v")
            return is_cluster(client), await client.get("k"), await raw.get("k")
        finally:
            await client.aclose()
            await raw.aclose()

    assert asyncio.run(main()) == (False, "v", b"v")


def test_more_calls_than_connections_wait_for_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "MAX_CONNECTIONS", 2)

    async def main() -> list[object]:
        client = await connect(settings)
        try:  # six calls holding a connection 0.2 s each, over a pool of two
            return await asyncio.gather(*(client.blpop([f"empty:{n}"], 0.2) for n in range(6)))
        finally:
            await client.aclose()

    assert asyncio.run(main()) == [None] * 6  # none failed with "Too many connections"


@pytest.mark.cluster
def test_connect_to_a_cluster(cluster_url: str, tmp_path: Path) -> None:
    async def main() -> object:
        client = await connect(Settings(redis_url=cluster_url, state_dir=tmp_path))
        try:
            assert isinstance(client, RedisCluster) and is_cluster(client)
            await client.set("{t}k", "v")
            return await client.get("{t}k")
        finally:
            await client.aclose()

    assert asyncio.run(main()) == "v"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("ftp://x", "unsupported scheme"),
        (f"redis://user:hunter2@127.0.0.1:{free_port()}/0", "cannot reach Redis at"),
        (f"redis+cluster://127.0.0.1:{free_port()}", "cannot reach Redis cluster at"),
    ],
)
def test_bad_or_unreachable_servers_fail_naming_the_url(
    url: str, needle: str, tmp_path: Path
) -> None:
    with pytest.raises(ConnectionFailed, match=needle) as caught:
        _connect(url, tmp_path)
    message = str(caught.value)
    assert "RWQ_REDIS_URL" in message and "hunter2" not in message
    assert "\n" not in message
