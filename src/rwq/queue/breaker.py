"""A circuit breaker per queue in the worker: stop taking jobs whose runs keep failing."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """When to open: ``failure_ratio`` of at least ``min_calls`` runs in ``window`` seconds."""

    failure_ratio: float = 0.5
    window: float = 30.0
    min_calls: int = 20
    cooldown: float = 10.0
    enabled: bool = True


class CircuitBreaker:
    """Closed: every run allowed. Open: none, until ``cooldown`` passes. Half-open: one probe
    run; its success closes the breaker, its failure opens it again."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self._clock = clock
        self._runs: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self.state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_out = False

    def allowance(self) -> int:
        """How many jobs may be taken now: -1 for no limit, 0 for none, 1 for a probe."""
        if not self.policy.enabled or self.state is BreakerState.CLOSED:
            return -1
        if self.state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.policy.cooldown:
                return 0
            self.state = BreakerState.HALF_OPEN
            self._probe_out = False
        if self._probe_out:
            return 0
        return 1

    def probe_taken(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._probe_out = True

    def record(self, success: bool) -> None:
        """Record one run's outcome."""
        if not self.policy.enabled:
            return
        now = self._clock()
        if self.state is BreakerState.HALF_OPEN:
            if success:
                self._reset(BreakerState.CLOSED)
            else:
                self._open(now)
            return
        if self.state is BreakerState.OPEN:
            return  # a run that started before the breaker opened
        self._runs.append((now, success))
        if not success:
            self._failures += 1
        horizon = now - self.policy.window
        while self._runs and self._runs[0][0] < horizon:
            _, ok = self._runs.popleft()
            if not ok:
                self._failures -= 1
        total = len(self._runs)
        if total >= self.policy.min_calls and self._failures / total >= self.policy.failure_ratio:
            self._open(now)

    def _open(self, now: float) -> None:
        self._reset(BreakerState.OPEN)
        self._opened_at = now

    def _reset(self, state: BreakerState) -> None:
        self.state = state
        self._runs.clear()
        self._failures = 0
        self._probe_out = False
