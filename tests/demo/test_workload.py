"""The demo workload: tenant profiles, the producer thread and the handler set (run times,
failure rates, permanent failures)."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest

from rwq.cli.app import load_handlers
from rwq.demo.workload import (
    MAX_DURATION_FACTOR,
    PERMANENT_SHARE,
    PROFILES,
    QUEUES,
    DemoHandler,
    SyntheticProducer,
    handlers,
)
from rwq.queue.admin import Admin
from rwq.queue.job import Job
from rwq.queue.producer import Producer
from rwq.queue.worker import PermanentFailure


def job(**payload: Any) -> Job:
    base = {"tenant": "acme", "kind": "invoice.render", "duration_ms": 10, "fail_rate": 0.0}
    return Job(id="j1", queue="tenant.acme", payload={**base, **payload})


class Recorder:
    """A handler without waiting: records what it would have slept."""

    def __init__(self, seed: int = 7) -> None:
        self.slept: list[float] = []
        self.handler = DemoHandler(random.Random(seed), sleep=self.slept.append)

    def outcomes(self, n: int, **payload: Any) -> Counter[str]:
        """Run ``n`` jobs; count ``ok``, ``permanent`` and ``transient`` outcomes."""
        seen: Counter[str] = Counter()
        for _ in range(n):
            try:
                self.handler(job(**payload))
            except PermanentFailure:
                seen["permanent"] += 1
            except Exception:
                seen["transient"] += 1
            else:
                seen["ok"] += 1
        return seen


@pytest.mark.parametrize("fail_rate", [0.0, 0.05, 0.25, 1.0])
def test_failure_rate_is_honoured(fail_rate: float) -> None:
    seen = Recorder().outcomes(4000, fail_rate=fail_rate)
    failed = (seen["permanent"] + seen["transient"]) / 4000
    assert failed == pytest.approx(fail_rate, abs=0.02)


def test_a_tenth_of_failures_are_permanent_by_default() -> None:
    seen = Recorder().outcomes(4000, fail_rate=1.0)
    assert seen["ok"] == 0
    assert seen["permanent"] / 4000 == pytest.approx(PERMANENT_SHARE, abs=0.02)


def test_permanent_rate_in_the_payload_decides_the_kind_of_failure() -> None:
    assert Recorder().outcomes(200, fail_rate=1.0, permanent_rate=1.0) == {"permanent": 200}
    assert Recorder().outcomes(200, fail_rate=1.0, permanent_rate=0.0) == {"transient": 200}


def test_permanent_failures_read_like_real_errors() -> None:
    handler = DemoHandler(random.Random(1), sleep=lambda s: None)
    with pytest.raises(PermanentFailure) as caught:
        handler(job(fail_rate=1.0, permanent_rate=1.0))
    assert str(caught.value)  # e.g. "schema validation failed: ..."


def test_errors_are_varied_and_fit_the_job_kind() -> None:
    handler = DemoHandler(random.Random(3), sleep=lambda s: None)
    messages: set[str] = set()
    for _ in range(300):
        with pytest.raises(Exception) as caught:
            handler(job(kind="payment.capture", fail_rate=1.0, permanent_rate=0.0))
        messages.add(f"{type(caught.value).__name__}: {caught.value}")
    assert len(messages) >= 3
    assert any(m.startswith("TimeoutError: upstream payment API") for m in messages)


def test_the_same_seed_gives_the_same_run() -> None:
    assert Recorder(seed=11).outcomes(500, fail_rate=0.3) == Recorder(seed=11).outcomes(
        500, fail_rate=0.3
    )


def test_run_times_scatter_around_the_mean_and_are_capped() -> None:
    recorder = Recorder()
    recorder.outcomes(4000, duration_ms=100)
    mean_ms = sum(recorder.slept) / len(recorder.slept) * 1000
    assert mean_ms == pytest.approx(100, rel=0.1)
    assert max(recorder.slept) <= 100 * MAX_DURATION_FACTOR / 1000
    assert len({round(s, 4) for s in recorder.slept}) > 100  # not one fixed sleep


def test_a_success_returns_what_it_did_and_odd_payloads_do_not_crash() -> None:
    handler = DemoHandler(random.Random(1), sleep=lambda s: None)
    assert handler(job())["kind"] == "invoice.render"
    handler(Job(id="j", queue="q", payload="not a dict"))
    handler(job(duration_ms="slow", fail_rate=None))


def test_profiles_name_their_queues_and_differ() -> None:
    assert tuple(f"tenant.{p.name}" for p in PROFILES) == QUEUES
    assert {p.name for p in PROFILES} >= {"acme", "globex", "initech", "umbrella", "hooli"}
    assert sum(p.share for p in PROFILES) == pytest.approx(1.0)
    assert [p.priority for p in PROFILES] == sorted((p.priority for p in PROFILES), reverse=True)
    worst = max(PROFILES, key=lambda p: p.fail_rate)
    assert worst.fail_rate >= 0.2
    assert worst.duration_ms == max(p.duration_ms for p in PROFILES)  # slow and failing
    assert min(p.fail_rate for p in PROFILES) <= 0.02  # a healthy one too


def test_profile_payloads_carry_what_the_handler_reads() -> None:
    rng = random.Random(5)
    for profile in PROFILES:
        payload = profile.payload(rng)
        assert payload["tenant"] == profile.name
        assert payload["kind"] in profile.kinds
        assert (payload["duration_ms"], payload["fail_rate"]) == (
            profile.duration_ms,
            profile.fail_rate,
        )


def test_the_cli_loads_the_demo_handler_set() -> None:
    loaded = load_handlers("rwq.demo.workload:handlers")
    assert loaded is handlers
    assert isinstance(loaded["*"], DemoHandler)


def test_the_producer_spreads_its_rate_over_the_tenants(producer: Producer, admin: Admin) -> None:
    synthetic = SyntheticProducer(producer, rate=400, rng=random.Random(2))
    synthetic.start()
    time.sleep(1.0)
    synthetic.stop()
    synthetic.join()
    stats = {q.queue: q for q in admin.stats().queues}
    assert set(stats) == set(QUEUES)
    assert sum(q.enqueued_total for q in stats.values()) == synthetic.enqueued
    by_share = sorted(PROFILES, key=lambda p: p.share)
    assert stats[by_share[-1].queue].enqueued_total > stats[by_share[0].queue].enqueued_total
    initech = next(p for p in PROFILES if p.name == "initech")
    job = admin.peek(initech.queue, 1)[0]
    assert (job.tenant, job.priority, job.max_retries) == ("initech", 3, initech.max_retries)
    assert job.payload["fail_rate"] == initech.fail_rate
