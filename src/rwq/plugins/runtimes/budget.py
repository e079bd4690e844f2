"""A plugin's CPU budget: the share of one core it may use over a sliding window.

The manifest's ``resources.max_cpu`` is a percentage of one core. A runtime adds the CPU time
of every call into the plugin; while the time spent in the last window exceeds the budget
the plugin is *throttled*: the host coalesces its events instead of delivering each batch, until
enough of the window has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_SLOTS = 20


class CpuBudget:
    """CPU seconds used over the last ``window_s`` seconds against ``percent`` of one core.

    Time is kept in ``20`` slots of ``window_s / 20`` each, so adding and reading are O(1)
    however often the plugin is called; the window is exact to one slot.
    """

    def __init__(
        self,
        percent: float,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.percent = percent
        self.window_s = window_s
        self.clock = clock
        self._slot_s = window_s / _SLOTS
        self._slots = [0.0] * _SLOTS
        self._current = int(clock() / self._slot_s)

    @property
    def allowance_s(self) -> float:
        """CPU seconds the plugin may use per window."""
        return self.percent / 100.0 * self.window_s

    def add(self, seconds: float) -> None:
        """Record ``seconds`` of CPU time used now."""
        self._advance()
        self._slots[self._current % _SLOTS] += seconds

    def used_s(self) -> float:
        """CPU seconds used in the window."""
        self._advance()
        return sum(self._slots)

    def clear(self) -> None:
        """Forget the CPU used so far."""
        self._slots = [0.0] * _SLOTS
        self._current = int(self.clock() / self._slot_s)

    def share_percent(self) -> float:
        """The CPU used in the window, as a percentage of one core."""
        return self.used_s() / self.window_s * 100.0

    @property
    def throttled(self) -> bool:
        """Whether the plugin used more than its budget in the window."""
        return self.used_s() > self.allowance_s

    def _advance(self) -> None:
        now = int(self.clock() / self._slot_s)
        if now == self._current:
            return
        for i in range(self._current + 1, min(now, self._current + _SLOTS) + 1):
            self._slots[i % _SLOTS] = 0.0
        self._current = now
