"""Plugins' timers (``set_timer``): due times in one heap, fired to ``on_timer``."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rwq.plugins.contract.errors import InvalidArgument, QuotaExceeded
from rwq.plugins.contract.host_functions import MAX_TIMERS, MIN_TIMER_MS

__all__ = ["TimerFired", "TimerTable"]


@dataclass(frozen=True)
class TimerFired:
    """A timer that came due: call the plugin's ``on_timer`` with :meth:`argument`."""

    plugin: str
    id: str
    ts: float
    """Epoch milliseconds when it was found due."""

    def argument(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts}


@dataclass
class _Timer:
    interval: float
    repeat: bool
    due: float
    generation: int


class TimerTable:
    """Plugins' timers. The lifecycle manager polls :meth:`due` (sleeping until
    :meth:`next_due`) and calls each plugin's ``on_timer``. Thread-safe.

    Args:
        max_per_plugin: timers one plugin may hold at once.
        min_interval_ms: the shortest interval allowed.
        clock: monotonic seconds.
        wall: epoch seconds, for :attr:`TimerFired.ts`.
    """

    def __init__(
        self,
        *,
        max_per_plugin: int = MAX_TIMERS,
        min_interval_ms: int = MIN_TIMER_MS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_per_plugin = max_per_plugin
        self.min_interval_ms = min_interval_ms
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._timers: dict[tuple[str, str], _Timer] = {}
        self._counts: Counter[str] = Counter()
        self._heap: list[tuple[float, int, str, str]] = []
        self._generations = itertools.count(1)

    def set(self, plugin: str, timer_id: str, interval_ms: int, repeat: bool = True) -> None:
        """Start (or restart) a timer firing ``interval_ms`` from now.

        Raises:
            QuotaExceeded: the plugin already holds ``max_per_plugin`` other timers.
            InvalidArgument: the interval is under ``min_interval_ms``.
        """
        if interval_ms < self.min_interval_ms:
            raise InvalidArgument(
                f"interval_ms must be at least {self.min_interval_ms}, got {interval_ms}",
                function="set_timer",
                argument="interval_ms",
            )
        key = (plugin, timer_id)
        with self._lock:
            if key not in self._timers and self._counts[plugin] >= self.max_per_plugin:
                raise QuotaExceeded(
                    f"plugin {plugin!r} already has {self.max_per_plugin} timers; clear one first",
                    plugin=plugin,
                    function="set_timer",
                )
            if key not in self._timers:
                self._counts[plugin] += 1
            interval = interval_ms / 1000
            timer = _Timer(interval, repeat, self._clock() + interval, next(self._generations))
            self._timers[key] = timer
            heapq.heappush(self._heap, (timer.due, timer.generation, plugin, timer_id))

    def clear(self, plugin: str, timer_id: str) -> bool:
        """Cancel a timer; False if the plugin had none of that name."""
        with self._lock:
            return self._drop((plugin, timer_id))

    def clear_all(self, plugin: str) -> int:
        """Cancel every timer of ``plugin`` (it unloaded); returns how many."""
        with self._lock:
            mine = [key for key in self._timers if key[0] == plugin]
            for key in mine:
                self._drop(key)
            return len(mine)

    def _drop(self, key: tuple[str, str]) -> bool:
        if self._timers.pop(key, None) is None:
            return False
        self._counts[key[0]] -= 1
        if not self._counts[key[0]]:
            del self._counts[key[0]]
        return True  # its heap entry is skipped when it surfaces

    def count(self, plugin: str) -> int:
        return self._counts.get(plugin, 0)

    def next_due(self) -> float | None:
        """The clock time the earliest timer comes due, or None without timers."""
        with self._lock:
            while self._heap:
                due, generation, plugin, timer_id = self._heap[0]
                timer = self._timers.get((plugin, timer_id))
                if timer is not None and timer.generation == generation:
                    return due
                heapq.heappop(self._heap)
            return None

    def due(self, now: float | None = None) -> list[TimerFired]:
        """The timers due at ``now`` (the clock's time by default), earliest first. Repeating
        timers are rescheduled one interval on (never to catch up missed firings), one-shot
        timers removed."""
        now = self._clock() if now is None else now
        fired: list[TimerFired] = []
        with self._lock:
            ts = self._wall() * 1000
            while self._heap and self._heap[0][0] <= now:
                due, generation, plugin, timer_id = heapq.heappop(self._heap)
                key = (plugin, timer_id)
                timer = self._timers.get(key)
                if timer is None or timer.generation != generation:
                    continue
                fired.append(TimerFired(plugin, timer_id, ts))
                if timer.repeat:
                    timer.due = due + timer.interval
                    if timer.due <= now:  # late by a whole interval: skip, don't catch up
                        timer.due = now + timer.interval
                    timer.generation = next(self._generations)
                    heapq.heappush(self._heap, (timer.due, timer.generation, plugin, timer_id))
                else:
                    self._drop(key)
        return fired
