"""Tokens, sessions and a job lookup across queues on the 3-master cluster: the web keys share
one hash tag, the lookup pipelines reads of several slots."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.web.lookup import find_job
from rwq.web.sessions import SessionStore
from rwq.web.tokens import TokenStore

pytestmark = pytest.mark.cluster


def test_tokens_sessions_and_lookup_on_a_cluster(
    cluster_client: RedisCluster, cluster_url: str, tmp_path: Path
) -> None:
    settings = Settings(redis_url=cluster_url, state_dir=tmp_path / "state", persistence=False)
    broker = Broker(cluster_client, settings)
    tokens = TokenStore(cluster_client, broker.keys)
    token, secret = tokens.create("ci", ["observer"])
    assert tokens.authenticate(secret) == token
    assert [t.name for t in tokens.list()] == ["ci"]
    sessions = SessionStore(cluster_client, broker.keys)
    session_id, session = sessions.create(token, tokens.clock())
    assert sessions.get(session_id) == session
    jobs = [Producer(broker).enqueue(f"q{n}", n) for n in range(6)]
    found = find_job(broker, jobs[4].id, broker.queues())
    assert found is not None and (found.queue, found.payload) == ("q4", 4)
    tokens.revoke("ci")
    assert tokens.list() == []
