"""The job screen: everything stored about a job, as plain text."""

from __future__ import annotations

import redis

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.tui.dialogs import job_text


def test_the_job_screen_shows_the_jobs_timeout(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer = Producer(Broker(redis_client, settings))
    bounded = producer.enqueue("q", {"n": 1}, timeout="90s")
    unbounded = producer.enqueue("q", {"n": 2})
    assert "    timeout  90s\n" in job_text(bounded).plain
    assert "    timeout  none of its own\n" in job_text(unbounded).plain
