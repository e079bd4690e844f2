"""Fixtures of the asyncio API: a flushed server, standalone or the 3-master cluster, and the
sync broker and admin that check what the async side wrote."""

from __future__ import annotations

import pytest
from aio_target import Target

from rwq.config import Settings
from rwq.queue.broker import Broker


@pytest.fixture(params=["standalone", pytest.param("cluster", marks=pytest.mark.cluster)])
def target(request: pytest.FixtureRequest, settings: Settings) -> Target:
    if request.param == "standalone":
        client = request.getfixturevalue("redis_client")
        return Target("standalone", settings, Broker(client, settings))
    cluster = settings.replace(redis_url=request.getfixturevalue("cluster_url"))
    client = request.getfixturevalue("cluster_client")
    return Target("cluster", cluster, Broker(client, cluster))
