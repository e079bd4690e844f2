"""The circuit breaker, on a fake clock: when it opens, how it probes, when it closes."""

from __future__ import annotations

import pytest

from rwq.queue.breaker import BreakerPolicy, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **policy: float | int | bool) -> CircuitBreaker:
    defaults: dict[str, float | int | bool] = {
        "failure_ratio": 0.5,
        "window": 30.0,
        "min_calls": 4,
        "cooldown": 10.0,
    }
    return CircuitBreaker(BreakerPolicy(**{**defaults, **policy}), clock=clock)  # type: ignore[arg-type]


def trip(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(4):
        clock.now += 0.1
        breaker.record(False)
    assert breaker.state is BreakerState.OPEN


def test_closed_allows_without_limit(clock: FakeClock) -> None:
    breaker = make(clock)
    assert (breaker.state, breaker.allowance()) == (BreakerState.CLOSED, -1)


def test_stays_closed_below_min_calls(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record(False)
    assert breaker.state is BreakerState.CLOSED


def test_stays_closed_below_the_failure_ratio(clock: FakeClock) -> None:
    breaker = make(clock, failure_ratio=0.6)
    for ok in [True, False, True, False, True]:  # 40 % failures
        breaker.record(ok)
    assert breaker.state is BreakerState.CLOSED


def test_opens_at_the_failure_ratio(clock: FakeClock) -> None:
    breaker = make(clock)
    for ok in [True, False, True]:
        breaker.record(ok)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(False)  # 2 of 4
    assert breaker.state is BreakerState.OPEN
    assert breaker.allowance() == 0


def test_old_runs_leave_the_window(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(3):
        breaker.record(False)
    clock.now += 31  # those failures are now outside the 30 s window
    breaker.record(False)
    assert breaker.state is BreakerState.CLOSED
    for _ in range(3):
        breaker.record(True)
    assert breaker.state is BreakerState.CLOSED  # 1 failure in 4


def test_open_refuses_until_the_cooldown_then_allows_one_probe(clock: FakeClock) -> None:
    breaker = make(clock)
    trip(breaker, clock)
    clock.now += 9.9
    assert breaker.allowance() == 0
    clock.now += 0.2
    assert breaker.allowance() == 1
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.probe_taken()
    assert breaker.allowance() == 0  # one probe at a time


def test_a_probe_that_found_no_job_may_be_taken_again(clock: FakeClock) -> None:
    breaker = make(clock)
    trip(breaker, clock)
    clock.now += 11
    assert breaker.allowance() == 1
    assert breaker.allowance() == 1  # nothing was taken: still one probe allowed


def test_a_successful_probe_closes(clock: FakeClock) -> None:
    breaker = make(clock)
    trip(breaker, clock)
    clock.now += 11
    breaker.allowance()
    breaker.probe_taken()
    breaker.record(True)
    assert (breaker.state, breaker.allowance()) == (BreakerState.CLOSED, -1)
    for _ in range(3):  # the old failures were forgotten
        breaker.record(False)
    assert breaker.state is BreakerState.CLOSED


def test_a_failed_probe_opens_again_for_a_full_cooldown(clock: FakeClock) -> None:
    breaker = make(clock)
    trip(breaker, clock)
    clock.now += 11
    breaker.allowance()
    breaker.probe_taken()
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    clock.now += 9.9
    assert breaker.allowance() == 0
    clock.now += 0.2
    assert breaker.allowance() == 1


def test_results_of_runs_started_before_it_opened_are_ignored(clock: FakeClock) -> None:
    breaker = make(clock)
    trip(breaker, clock)
    breaker.record(True)
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    clock.now += 11
    assert breaker.allowance() == 1


def test_a_disabled_breaker_never_opens(clock: FakeClock) -> None:
    breaker = make(clock, enabled=False)
    for _ in range(100):
        breaker.record(False)
    assert (breaker.state, breaker.allowance()) == (BreakerState.CLOSED, -1)
