"""Shared fixtures: one real Valkey for the session (flushed per test), a lazy local cluster.

Every server here listens on 127.0.0.1 or a unix socket in a temporary directory and is
stopped at teardown; no test touches the real ``~/.local/state``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings
from redis.cluster import RedisCluster

from rwq.config import Settings
from rwq.connection import connect
from rwq.valkey.cluster import LocalCluster, start_cluster
from rwq.valkey.standalone import StandaloneServer

# Property tests of the boundaries (marked ``fuzz``) take their example count from the profile:
# bounded in `make test`, deep in `make fuzz` (HYPOTHESIS_PROFILE=fuzz).
settings.register_profile("default", deadline=None, max_examples=100)
settings.register_profile(
    "fuzz", deadline=None, max_examples=5000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A default Settings() must never reach the developer's state dir or RWQ_* variables,
    # nor the repository's ./plugins (the default plugin dir is relative to the working dir).
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    for name in list(os.environ):
        if name.startswith("RWQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneServer]:
    """The session's Valkey on 127.0.0.1, without persistence."""
    server = StandaloneServer(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def valkey_url(valkey_server: StandaloneServer) -> str:
    """``redis://127.0.0.1:<port>`` of the session's Valkey."""
    return valkey_server.url


@pytest.fixture
def redis_client(valkey_server: StandaloneServer) -> Iterator[redis.Redis]:
    """A client of the session's Valkey, emptied before the test; decodes to ``str``."""
    valkey_server.start()  # a no-op unless an earlier test left it killed
    client = valkey_server.client(decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(valkey_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at the session's Valkey, with state in the test's tmp dir."""
    return Settings(
        redis_url=valkey_url, state_dir=tmp_path / "state", persistence=False, prefix="rwq"
    )


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., StandaloneServer]]:
    """A factory of started throwaway servers (``make_server(persistence=True)``).

    Each keeps its port and data dir across ``restart()``/``kill()``+``start()``, for tests
    that crash or restart Redis; all are removed at teardown.
    """
    servers: list[StandaloneServer] = []

    def make(*, persistence: bool = False) -> StandaloneServer:
        server = StandaloneServer(tmp_path / f"server-{len(servers)}", persistence=persistence)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.remove()


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-master cluster, started on first use (about 2 s) and stopped at session end."""
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"), masters=3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def cluster_url(local_cluster: LocalCluster) -> str:
    """``redis+cluster://127.0.0.1:<p1>,...`` of the session's cluster."""
    return local_cluster.url


@pytest.fixture
def cluster_client(local_cluster: LocalCluster, tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster client with every master emptied before the test; decodes to ``str``."""
    if not all(node.running for node in local_cluster.nodes):
        for node in local_cluster.nodes:  # an earlier test left a node killed
            node.start()
        local_cluster.wait_ok()
    client = connect(Settings(redis_url=local_cluster.url, state_dir=tmp_path / "state"))
    assert isinstance(client, RedisCluster)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()
