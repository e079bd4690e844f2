"""The job screen: everything stored about a job, as plain text."""

from __future__ import annotations

import redis

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.queue.worker import Worker
from rwq.tui.dialogs import job_text


def test_the_job_screen_shows_the_jobs_timeout(
    settings: Settings, redis_client: redis.Redis
) -> None:
    producer = Producer(Broker(redis_client, settings))
    bounded = producer.enqueue("q", {"n": 1}, timeout="90s")
    unbounded = producer.enqueue("q", {"n": 2})
    assert "    timeout  90s\n" in job_text(bounded).plain
    assert "    timeout  none of its own\n" in job_text(unbounded).plain


def test_the_job_screen_shows_a_completed_jobs_result(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broker = Broker(redis_client, settings)
    producer = Producer(broker)
    kept = producer.enqueue("q", {"n": 1})
    noted = producer.enqueue("q", {"n": 2})
    handlers = {"q": lambda job: {"sent": job.payload["n"]} if job.payload["n"] == 1 else {1, 2}}
    Worker(broker, ["q"], handlers).run(max_jobs=2)
    text = job_text(found(broker, kept.id)).plain
    assert '\nresult\n{\n  "sent": 1\n}\n' in text
    noted_text = job_text(found(broker, noted.id)).plain
    assert "\nresult\nresult not kept: not JSON-serialisable" in noted_text


def found(broker: Broker, job_id: str) -> Job:
    job = Admin(broker).find_job(job_id)
    assert job is not None, job_id
    return job
