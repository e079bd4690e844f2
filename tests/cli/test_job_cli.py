"""``rwq admin job ID`` and ``rwq job wait ID`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker, Failure
from rwq.queue.producer import Producer
from rwq.queue.worker import Worker

Rwq = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def broker(redis_client: redis.Redis, settings: Settings) -> Broker:
    return Broker(redis_client, settings)


def _complete(broker: Broker, queue: str, result: str) -> None:
    (job,) = broker.fetch(queue, "w1", 1).jobs
    assert broker.complete(queue, "w1", [(job.id, 4.0, job.attempts, result, "", -1)]) == [1]


def test_admin_job_shows_a_job_found_by_its_id_alone(rwq: Rwq, broker: Broker) -> None:
    broker.register_queues(["a", "b"])
    handle = Producer(broker).enqueue("b", {"to": "ada"}, tenant="acme", priority=7)
    shown = rwq("admin", "job", handle.id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"job {handle.id}"
    for expected in ("state:", "pending"), ("queue:", "b"), ("tenant:", "acme"), (
        "priority:", "7"), ("attempts:", "0 of 4"), ("payload:", '{"to": "ada"}'):  # fmt: skip
        assert any(line.split()[:1] == [expected[0]] and expected[1] in line for line in lines), (
            expected, shown.stdout)  # fmt: skip
    _complete(broker, "b", '{"sent":true}')
    data = json.loads(rwq("admin", "job", handle.id, "--json").stdout)
    assert (data["state"], data["queue"], data["result"]) == ("completed", "b", {"sent": True})
    assert data["finished_at"] is not None and data["worker"] == "w1"
    shown = rwq("admin", "job", handle.id)
    assert "result:" in shown.stdout and '{"sent": true}' in shown.stdout


def test_admin_job_shows_a_dead_job_s_error_and_traceback(rwq: Rwq, broker: Broker) -> None:
    handle = Producer(broker).enqueue("q", 1, max_retries=0)
    broker.fetch("q", "w1", 1)
    broker.fail("q", "w1", [Failure(handle.id, 1.0, "ValueError: bad", "Traceback\n  line 1")])
    shown = rwq("admin", "job", handle.id, "--queue", "q")
    assert shown.returncode == 0
    assert "ValueError: bad" in shown.stdout and "    line 1" in shown.stdout
    assert "dead:" in shown.stdout


def test_an_unknown_job_id_is_one_line_and_exit_1(rwq: Rwq, broker: Broker) -> None:
    broker.register_queues(["q"])
    for args in (("admin", "job", "nope"), ("job", "wait", "nope")):
        missing = rwq(*args)
        assert missing.returncode == 1
        assert missing.stderr.strip().splitlines() == [
            "error: no job 'nope' on any queue: never enqueued, deleted, or completed longer "
            "ago than its result is kept (setting result_ttl)"
        ]
    unknown = rwq("admin", "job", "nope", "--queue", "other")
    assert unknown.returncode == 1 and "unknown queue 'other'" in unknown.stderr


def test_job_wait_times_out_with_exit_124(rwq: Rwq, broker: Broker) -> None:
    handle = Producer(broker).enqueue("q", 1)
    waited = rwq("job", "wait", handle.id, "--timeout", "100ms", "--json")
    assert waited.returncode == 124, waited.stderr
    assert json.loads(waited.stdout)["outcome"] == "timeout"
    assert broker.client.hget(broker.queue_keys("q").job(handle.id), "waiters") is None
    bad = rwq("job", "wait", handle.id, "--timeout", "soon")
    assert bad.returncode == 1 and "--timeout" in bad.stderr


def test_job_wait_of_a_job_that_ended_returns_at_once(rwq: Rwq, broker: Broker) -> None:
    producer = Producer(broker)
    done = producer.enqueue("q", 1)
    _complete(broker, "q", '"fine"')
    waited = rwq("job", "wait", done.id)
    assert waited.returncode == 0 and "fine" in waited.stdout
    dead = producer.enqueue("q", 2, max_retries=0)
    broker.fetch("q", "w1", 1)
    broker.fail("q", "w1", [Failure(dead.id, 1.0, "KeyError: 'x'")])
    waited = rwq("job", "wait", dead.id, "--json")
    assert waited.returncode == 3
    data = json.loads(waited.stdout)
    assert (data["outcome"], data["job"]["last_error"]) == ("dead", "KeyError: 'x'")


@pytest.mark.parametrize(
    ("end", "status", "outcome"), [("complete", 0, "completed"), ("fail", 3, "dead"),
                                   ("purge", 4, "deleted"), ("cancel", 5, "cancelled")],
)  # fmt: skip
def test_job_wait_blocks_until_another_process_ends_the_job(
    broker: Broker, valkey_url: str, tmp_path: Path, end: str, status: int, outcome: str
) -> None:
    handle = Producer(broker).enqueue("q", 1, max_retries=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "state"), "RWQ_REDIS_URL": valkey_url}
    waiter = subprocess.Popen(
        [sys.executable, "-m", "rwq", "job", "wait", handle.id, "--timeout", "60s", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        key = broker.queue_keys("q").job(handle.id)
        deadline = time.monotonic() + 60
        while broker.client.hget(key, "waiters") != "1":  # it is counted: it blocks now
            assert waiter.poll() is None, waiter.communicate()
            assert time.monotonic() < deadline, "the waiter never registered"
            time.sleep(0.02)
        if end == "complete":
            _complete(broker, "q", '{"n":42}')
        elif end == "fail":
            broker.fetch("q", "w1", 1)
            broker.fail("q", "w1", [Failure(handle.id, 1.0, "KeyError: 'x'")])
        elif end == "purge":
            broker.purge("q", "pending")
        else:
            Admin(broker).cancel(handle.id)
        stdout, stderr = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == status, stderr
    data = json.loads(stdout)
    assert data["outcome"] == outcome
    if end == "complete":
        assert data["job"]["result"] == {"n": 42}
    elif end == "purge":
        assert data["job"] is None


def test_enqueue_takes_the_jobs_result_ttl(rwq: Rwq, broker: Broker) -> None:
    enqueued = rwq("enqueue", "q", "1", "--result-ttl", "10m", "--json")
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = json.loads(enqueued.stdout)["id"]
    Worker(broker, ["q"], {"q": lambda job: "ok"}).run(max_jobs=1)
    ttl = broker.client.pttl(broker.queue_keys("q").job(job_id))
    assert 0 < ttl <= 600_000
    for bad, reason in (("soon", "--result-ttl"), ("31d", "--result-ttl: at most 30 days")):
        refused = rwq("enqueue", "q", "1", "--result-ttl", bad)
        assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
