"""The local cluster helper: slots spread over masters, nodes restart into the cluster."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster

from rwq.valkey.cluster import LocalCluster

pytestmark = pytest.mark.cluster


def test_cluster_is_healthy_and_spread(local_cluster: LocalCluster) -> None:
    ports = {node.port for node in local_cluster.nodes}
    assert local_cluster.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{node.port}" for node in local_cluster.nodes
    )
    for node in local_cluster.nodes:
        with node.client(decode_responses=True) as client:
            info = client.execute_command("CLUSTER INFO")
            assert (info["cluster_state"], info["cluster_known_nodes"]) == ("ok", "3")
    with local_cluster.nodes[0].client(decode_responses=True) as client:
        slots = client.execute_command("CLUSTER SLOTS")
    owners = {(row[2][0], int(row[2][1])) for row in slots}
    assert [(row[0], row[1]) for row in sorted(slots)] == [(0, 5460), (5461, 10921), (10922, 16383)]
    assert owners == {("127.0.0.1", port) for port in ports}


def test_cluster_client_starts_empty_and_spans_masters(cluster_client: RedisCluster) -> None:
    assert cluster_client.dbsize(target_nodes=RedisCluster.PRIMARIES) == 0
    keys = [f"k{i}" for i in range(30)]
    for key in keys:
        cluster_client.set(key, key)
    assert cluster_client.dbsize(target_nodes=RedisCluster.PRIMARIES) == len(keys)
    assert len({cluster_client.get_node_from_key(k).name for k in keys}) == 3


def test_a_restarted_node_rejoins(
    local_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    node = local_cluster.nodes[1]
    node.kill()
    node.start()
    local_cluster.wait_ok()
    cluster_client.set("after-restart", "1")
    assert cluster_client.get("after-restart") == "1"
