"""Demo fixtures: a producer and admin on the session's standalone Valkey."""

from __future__ import annotations

import pytest
import redis

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer


@pytest.fixture
def broker(redis_client: redis.Redis, settings: Settings) -> Broker:
    return Broker(redis_client, settings)


@pytest.fixture
def producer(broker: Broker) -> Producer:
    return Producer(broker)


@pytest.fixture
def admin(broker: Broker) -> Admin:
    return Admin(broker)
