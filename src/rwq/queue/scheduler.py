"""The scheduler: fires the ticks of every periodic job as they come due.

Any number run at once (a thread of each ``rwq worker``, or ``rwq scheduler`` alone): they
read the same schedules and race to fire the same ticks, and the fire script lets one job per
tick through. Between ticks a scheduler sleeps until the earliest next tick, woken early when
a schedule is added, changed or removed (a message on :attr:`Keys.schedules_channel`).

Missed ticks (no scheduler ran, Redis was down): a scheduler that finds ticks past due fires
the latest of them once (``missed: coalesce``, the event's ``missed`` counts the others), or,
with ``missed: skip``, only if it is at most :data:`SKIP_GRACE_MS` late; then the schedule
resumes at its next tick.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rwq.outage import Outage
from rwq.queue.broker import Broker
from rwq.queue.runner import REDIS_ERRORS
from rwq.queue.schedules import Fired, ScheduleError, ScheduleState, ScheduleStore, server_ms
from rwq.schedule_spec import SKIP_GRACE_MS, ScheduleSpec

log = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0
"""Longest sleep without looking at the schedules again (a missed wake-up message)."""


@dataclass(frozen=True)
class TickResult:
    """One tick a scheduler tried to fire, and what became of it."""

    schedule: str
    tick: int
    missed: int
    outcome: Fired
    following: int
    """The tick due next."""


class Scheduler:
    """Fires due ticks of every schedule in Redis; ``specs`` (the settings' ``rwq.yaml``
    schedules) are synced first. ``clock`` gives epoch ms (default: the server's)."""

    def __init__(
        self,
        broker: Broker,
        specs: Mapping[str, ScheduleSpec] | None = None,
        *,
        clock: Callable[[], int] | None = None,
        max_sleep: float = MAX_SLEEP_S,
    ) -> None:
        self.broker = broker
        self.store = ScheduleStore(broker)
        self.specs = dict(specs if specs is not None else broker.settings.schedule_specs)
        self.clock = clock or (lambda: server_ms(broker.client))
        self.max_sleep = max_sleep
        self.fired = 0
        """Jobs this scheduler enqueued."""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- one pass ----------------------------------------------------------------------------

    def run_once(self, now_ms: int | None = None) -> tuple[list[TickResult], int | None]:
        """Fire every tick due at ``now_ms`` (default: the clock); returns what was tried and
        the earliest next tick (None: nothing scheduled)."""
        now = self.clock() if now_ms is None else now_ms
        results: list[TickResult] = []
        earliest: int | None = None
        for state in self.store.list():
            nxt = state.next_ms
            for _ in range(3):  # another scheduler moved it meanwhile: read it again
                if nxt is None or nxt > now:
                    break
                result = self._fire(state, now)
                results.append(result)
                if result.outcome.outcome != "changed":
                    nxt = result.following
                    break
                fresh = self.store.get(state.name)
                if fresh is None:
                    nxt = None
                    break
                state, nxt = fresh, fresh.next_ms
            if nxt is not None and (earliest is None or nxt < earliest):
                earliest = nxt
        return results, earliest

    def _fire(self, state: ScheduleState, now: int) -> TickResult:
        spec, due = state.spec, state.next_ms
        assert due is not None
        latest = spec.latest_tick(now)
        if latest is None or latest < due:
            latest = due
        missed = max(0, spec.count_ticks(due, latest) - 1)
        following = spec.next_tick(max(now, latest))
        skip = spec.missed == "skip" and now - latest > SKIP_GRACE_MS
        outcome = self.store.fire(state, latest, following, missed, skip=skip)
        if outcome.outcome == "fired":
            self.fired += 1
            log.info("schedule %s fired %s (tick %d, %d missed)", spec.name, outcome.job_id,
                     latest, missed)  # fmt: skip
        elif outcome.outcome == "skipped":
            log.warning("schedule %s: skipped %d missed tick(s)", spec.name, missed + 1)
        return TickResult(spec.name, latest, missed, outcome, following)

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in background threads until :meth:`stop`."""
        self._threads = [
            threading.Thread(target=self.run, name="rwq-scheduler", daemon=True),
            threading.Thread(target=self._listen, name="rwq-scheduler-listener", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def run(self) -> None:
        """Sync ``rwq.yaml``'s schedules, then fire ticks until :meth:`stop`."""
        synced = False
        delay = 0.1
        outage = Outage("scheduler", log, cap=self.broker.settings.outage_backoff_max)
        while not self._stop.is_set():
            try:
                if not synced:
                    self._sync()
                    synced = True
                self._wake.clear()
                _, earliest = self.run_once()
                outage.succeeded()
                delay = 0.1
                wait = self.max_sleep
                if earliest is not None:
                    wait = min(wait, max(0.0, (earliest - self.clock()) / 1000))
            except REDIS_ERRORS as exc:  # logged once per outage
                wait = outage.failed(exc)
            except Exception:  # a bug or a server refusing a command: log it, keep firing
                log.exception("scheduler: firing failed; retrying")
                wait, delay = delay, min(delay * 2, 5.0)
            self._wake.wait(wait)

    def _sync(self) -> None:
        try:
            changed = self.store.sync(self.specs)
        except ScheduleError as exc:  # read-only mode, a payload over the limit
            log.warning("scheduler: rwq.yaml's schedules not synced: %s", exc)
            return
        if changed:
            log.info("synced schedule(s) from rwq.yaml: %s", ", ".join(changed))

    def _listen(self) -> None:
        """Wake :meth:`run` when a schedule changes."""
        channel = self.broker.keys.schedules_channel
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.broker.client.pubsub()
                pubsub.subscribe(channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._wake.set()
            except REDIS_ERRORS:
                self._stop.wait(0.5)
            finally:
                with contextlib.suppress(Exception):
                    if pubsub is not None:
                        pubsub.close()
