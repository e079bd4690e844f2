"""URL parsing and connecting: plain, unix, cluster, embedded, and every way to fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from rwq.config import Settings
from rwq.connection import RedisUrl, connect, is_cluster, parse_url
from rwq.errors import ConnectionFailed
from rwq.valkey.embedded import EmbeddedServer
from rwq.valkey.process import free_port


@pytest.mark.parametrize(
    ("url", "cluster", "ssl"),
    [
        ("redis://localhost:6379/0", False, False),
        ("redis://:secret@10.0.0.1", False, False),
        ("rediss://user:pw@example.com:6380/2", False, True),
        ("unix:///run/valkey.sock", False, False),
        ("REDIS://localhost", False, False),
    ],
)
def test_parse_plain_urls(url: str, cluster: bool, ssl: bool) -> None:
    parsed = parse_url(url)
    assert (parsed.cluster, parsed.ssl, parsed.nodes) == (cluster, ssl, ())


def test_parse_cluster_urls() -> None:
    assert parse_url("redis+cluster://a:7000,b:7001,c") == RedisUrl(
        url="redis+cluster://a:7000,b:7001,c",
        cluster=True,
        ssl=False,
        nodes=(("a", 7000), ("b", 7001), ("c", 6379)),
    )
    parsed = parse_url("rediss+cluster://us%40r:p%3Aw@[::1]:7000,h:7001/")
    assert parsed.ssl and parsed.cluster
    assert parsed.nodes == (("::1", 7000), ("h", 7001))
    assert (parsed.username, parsed.password) == ("us@r", "p:w")
    assert parsed.redacted == "rediss+cluster://us%40r:***@[::1]:7000,h:7001/"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:6379", "unsupported scheme 'http'"),
        ("memcached://localhost", "unsupported scheme"),
        ("not a url at all", "not a URL"),
        ("", "not a URL"),
        ("redis://localhost:notaport", "malformed"),
        ("redis://localhost:99999", "malformed"),
        ("redis://localhost/abc", "not a number"),
        ("unix://relative.sock", "absolute socket path"),
        ("redis+cluster://a:1,b:x", "port must be a number"),
        ("redis+cluster://a:1,,b:2", "malformed node"),
        ("redis+cluster://a:1/3", "no path or query"),
        ("redis+cluster://a:1?timeout=3", "no path or query"),
    ],
)
def test_bad_urls_fail_naming_the_url(url: str, reason: str) -> None:
    with pytest.raises(ConnectionFailed) as caught:
        parse_url(url)
    message = str(caught.value)
    assert repr(url) in message
    assert reason in message
    assert "RWQ_REDIS_URL" in message
    assert "\n" not in message


def test_connect_rejects_bad_urls_too(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="ftp://x"):
        connect(Settings(redis_url="ftp://x", state_dir=tmp_path))


def test_unreachable_port_fails_fast_naming_the_url(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ConnectionFailed, match="cannot reach") as caught:
        connect(Settings(redis_url=url, state_dir=tmp_path))
    assert url in str(caught.value)
    assert "RWQ_REDIS_URL" in str(caught.value)


def test_unreachable_cluster_fails_naming_the_url(tmp_path: Path) -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionFailed, match="cannot reach") as caught:
        connect(Settings(redis_url=url, state_dir=tmp_path))
    assert url in str(caught.value)


def test_missing_unix_socket_fails(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/none.sock"
    with pytest.raises(ConnectionFailed, match=r"none\.sock"):
        connect(Settings(redis_url=url, state_dir=tmp_path))


def test_passwords_are_redacted_in_errors(tmp_path: Path) -> None:
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionFailed) as caught:
        connect(Settings(redis_url=url, state_dir=tmp_path))
    assert "hunter2" not in str(caught.value)
    assert "redis://user:***@127.0.0.1" in str(caught.value)


def test_connect_to_a_url(settings: Settings) -> None:
    client = connect(settings)
    try:
        assert not is_cluster(client)
        client.set("k", "v")
        assert client.get("k") == "v"
    finally:
        client.close()
    raw = connect(settings, decode_responses=False)
    try:
        assert raw.get("k") == b"v"
    finally:
        raw.close()


def test_connect_without_url_starts_the_embedded_server(tmp_path: Path) -> None:
    settings = Settings(redis_url=None, state_dir=tmp_path / "state", persistence=False)
    server = EmbeddedServer(settings.state_dir, persistence=False)
    try:
        client = connect(settings)
        assert client.ping()
        client.close()
        record = server.record()
        assert record is not None and not record.persistence
    finally:
        server.stop()


@pytest.mark.cluster
def test_connect_to_a_cluster(cluster_url: str, tmp_path: Path) -> None:
    client = connect(Settings(redis_url=cluster_url, state_dir=tmp_path))
    try:
        assert is_cluster(client)
        assert isinstance(client, RedisCluster)
        for key in ("a", "b", "c", "{q}:1"):
            client.set(key, key.upper())
        assert [client.get(k) for k in ("a", "b", "c", "{q}:1")] == ["A", "B", "C", "{Q}:1"]
        # Keys landed on more than one master: the slots really are spread.
        owners = {client.get_node_from_key(k).name for k in ("a", "b", "c")}
        assert len(owners) > 1
    finally:
        client.close()
