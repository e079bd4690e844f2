"""A local Valkey cluster of N masters on 127.0.0.1, for tests, chaos runs and benchmarks."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis

from rwq.valkey.process import ServerError, free_port
from rwq.valkey.standalone import StandaloneServer

SLOTS = 16384
READY_TIMEOUT = 15.0


class LocalCluster:
    """Running cluster nodes, each a :class:`StandaloneServer` with ``cluster-enabled yes``.

    Nodes keep their ``nodes.conf`` across restarts, so a chaos test can restart one
    (``cluster.nodes[1].restart()``) and it rejoins with its slots (but no data).
    """

    def __init__(self, base_dir: Path, nodes: list[StandaloneServer]) -> None:
        self.base_dir = base_dir
        self.nodes = nodes

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,...``."""
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    def wait_ok(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until every node reports ``cluster_state:ok`` and knows all the others.

        Raises:
            ServerError: the cluster is not healthy after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            node = pending[0]
            if _healthy(node, len(self.nodes)):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise ServerError(
                    f"cluster node {node.host}:{node.port} not ok after {timeout:g}s",
                    node.log_path,
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill every node and delete the cluster's directory."""
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_cluster(
    base_dir: Path,
    masters: int = 3,
    *,
    node_timeout_ms: int = 5000,
    timeout: float = READY_TIMEOUT,
    persistence: bool = False,
    extra_config: Sequence[Sequence[str]] = (),
) -> LocalCluster:
    """Start ``masters`` nodes under ``base_dir``, split the slots evenly and join them.

    Args:
        base_dir: one ``node-<i>`` directory per node goes here; removed by ``stop()``.
        masters: how many master nodes (no replicas).
        node_timeout_ms: ``cluster-node-timeout``; how soon a dead node marks the cluster down.
        timeout: how long to wait for ``cluster_state:ok`` on every node.
        persistence: each node keeps an AOF, so a node killed and started again comes back
            with its data (see :class:`StandaloneServer`).
        extra_config: more directives for every node, e.g. ``[("appendfsync", "always"),
            ("cluster-require-full-coverage", "no")]`` (the others keep serving their slots
            while one node is down).

    Raises:
        ServerError: a node failed to start or the cluster did not become healthy.
    """
    if not 1 <= masters <= SLOTS:
        raise ValueError(f"masters must be between 1 and {SLOTS}, got {masters}")
    nodes: list[StandaloneServer] = []
    cluster = LocalCluster(Path(base_dir).absolute(), nodes)
    try:
        for i in range(masters):
            # The bus port defaults to port+10000, which may be taken or above 65535.
            nodes.append(
                StandaloneServer(
                    cluster.base_dir / f"node-{i}",
                    persistence=persistence,
                    extra_config=[
                        ["cluster-enabled", "yes"],
                        ["cluster-config-file", "nodes.conf"],
                        ["cluster-port", str(free_port())],
                        ["cluster-node-timeout", str(node_timeout_ms)],
                        *extra_config,
                    ],
                )
            )
            nodes[-1].start()
        for i, node in enumerate(nodes):
            first, last = i * SLOTS // masters, (i + 1) * SLOTS // masters - 1
            with node.client() as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        with nodes[0].client() as client:
            for node in nodes[1:]:
                client.execute_command("CLUSTER MEET", node.host, node.port, _bus_port(node))
        cluster.wait_ok(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _bus_port(node: StandaloneServer) -> int:
    return next(int(d[1]) for d in node.extra_config if d[0] == "cluster-port")


def _healthy(node: StandaloneServer, expected_nodes: int) -> bool:
    try:
        with node.client(socket_timeout=1.0, decode_responses=True) as client:
            info = client.cluster("INFO")
    except redis.RedisError:
        return False
    if isinstance(info, str):  # older redis-py versions return the raw text
        info = dict(line.split(":", 1) for line in info.split() if ":" in line)
    return (
        info.get("cluster_state") == "ok"
        and int(info.get("cluster_known_nodes", 0)) == expected_nodes
        and int(info.get("cluster_slots_assigned", 0)) == SLOTS
    )
