"""The supervisor thread and its workers: due timers handed to the plugins, disabled plugins
reloaded after their backoff, and a poll for revoked grants and held-back events."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rwq.plugins.engine.calls import Calls, panel_changed
from rwq.plugins.engine.lifecycle import FaultPolicy, PluginState
from rwq.plugins.engine.outages import postpone
from rwq.plugins.engine.records import PluginRecord, PluginTable
from rwq.plugins.engine.subscriptions import Subscriptions
from rwq.plugins.host_api.timers import TimerFired, TimerTable
from rwq.plugins.runtimes.base import Hook, PluginFault
from rwq.queue.events import Event

log = logging.getLogger(__name__)

TICK = 0.2
"""Longest the supervisor sleeps: the revocation poll and backoff resolution."""


class Supervisor:
    """Runs the background work of the plugins: one thread that watches, two workers that
    call into the plugins.

    Args:
        table: the plugin records.
        ops: the lock that serialises lifecycle operations (a reload after backoff takes it).
        wake: set to wake the supervisor early (a timer was set, a plugin was disabled).
        timers: the host API's timers.
        fault_policy: after how long active a plugin's backoff is forgotten.
        calls: calls into the plugins (``on_timer``).
        subscriptions: drops the subscriptions of plugins whose grant was revoked.
        deliver: hands a plugin its held-back events (``Delivery.deliver``).
        restart: loads a disabled plugin again from its bundle (``Loader.restart``).
        host_healthy: whether Redis answers now.
    """

    def __init__(
        self,
        table: PluginTable,
        ops: threading.RLock,
        wake: threading.Event,
        timers: TimerTable,
        fault_policy: FaultPolicy,
        calls: Calls,
        subscriptions: Subscriptions,
        *,
        deliver: Callable[[str, list[Event]], None],
        restart: Callable[[PluginRecord], None],
        host_healthy: Callable[[], bool] | None = None,
    ) -> None:
        self._host_healthy = host_healthy
        """Whether Redis answers: a plugin stopped by an outage is reloaded only then."""
        self._table = table
        self._ops = ops
        self._wake = wake
        self._timers = timers
        self._policy = fault_policy
        self._calls = calls
        self._subscriptions = subscriptions
        self._deliver = deliver
        self._restart = restart
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rwq-plugin-work")
        self._thread = threading.Thread(
            target=self._supervise, name="rwq-plugin-supervisor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then the workers (work under way finishes, the rest is dropped)."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)

    def _supervise(self) -> None:
        next_poll = 0.0
        clock = self._table.clock
        while not self._halt.is_set():
            self._wake.clear()
            try:
                now = clock()
                for fired in self._timers.due(now):
                    self._queue_timer(fired)
                self._retry_disabled(now)
                if now >= next_poll:
                    next_poll = now + TICK
                    self._poll(now)
            except Exception:
                log.exception("plugin supervisor failed; carrying on")
            wait = TICK
            due = self._timers.next_due()
            if due is not None:
                wait = min(wait, max(0.0, due - clock()))
            self._wake.wait(wait)

    def _poll(self, now: float) -> None:
        with self._table.lock:
            active = [r for r in self._table.records() if r.state is PluginState.ACTIVE]
        for rec in active:
            if rec.backoff_level and now - rec.active_since >= self._policy.healthy_after:
                rec.backoff_level = 0
            if rec.lock.acquire(blocking=False):  # a busy plugin is looked at next round
                try:
                    self._subscriptions.sync(rec)
                    if rec.deferred and not getattr(rec.instance, "throttled", False):
                        self._submit(lambda r: self._deliver(r.name, []), rec)
                finally:
                    rec.lock.release()

    def _retry_disabled(self, now: float) -> None:
        with self._table.lock:
            due = [
                r
                for r in self._table.records()
                if r.state is PluginState.DISABLED and r.retry_at is not None and r.retry_at <= now
            ]
            for rec in due:
                rec.retry_at = None
        for rec in due:
            self._submit(self._reload, rec)

    def _reload(self, rec: PluginRecord) -> None:
        if rec.waiting_for_host and self._host_healthy is not None and not self._host_healthy():
            delay = postpone(self._table, rec)
            log.debug("plugin %s: Redis still unavailable; next try in %gs", rec.name, delay)
            self._wake.set()
            return
        with self._ops:
            if self._halt.is_set() or rec.state is not PluginState.DISABLED:
                return
            log.info("plugin %s: reloading after its backoff", rec.name)
            self._restart(rec)

    def _queue_timer(self, fired: TimerFired) -> None:
        rec = self._table.find(fired.plugin)
        if rec is None:
            return
        with self._table.lock:
            rec.timers_pending.append(fired)
            if rec.timers_scheduled:
                return
            rec.timers_scheduled = True
        self._submit(self._run_timers, rec)

    def _run_timers(self, rec: PluginRecord) -> None:
        """Hand a plugin its due timers, one ``on_timer`` each, in one hold of its lock."""
        while True:
            with self._table.lock:
                batch, rec.timers_pending = rec.timers_pending, []
                if not batch or self._halt.is_set():
                    rec.timers_scheduled = False
                    return
            changed = False
            with rec.lock:
                for fired in batch:
                    if rec.state is not PluginState.ACTIVE or Hook.ON_TIMER not in rec.exports:
                        break
                    try:
                        changed |= self._calls.invoke(
                            rec, Hook.ON_TIMER, fired.argument(), panel_changed
                        )
                    except PluginFault:
                        break
            if changed:
                self._table.mark_dirty(rec)

    def _submit(self, work: Callable[[PluginRecord], None], rec: PluginRecord) -> None:
        if self._workers is None or self._halt.is_set():
            return

        def run() -> None:
            try:
                work(rec)
            except Exception:
                log.exception("plugin %s: background work failed", rec.name)

        with contextlib.suppress(RuntimeError):  # shut down meanwhile
            self._workers.submit(run)
