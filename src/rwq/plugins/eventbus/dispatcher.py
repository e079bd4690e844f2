"""The dispatcher: hands each plugin its inbox of the event bus as one batch, from a small
thread pool, higher priority first."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

from rwq.plugins.eventbus.bus import DEFAULT_INBOX, BusError, EventBus
from rwq.queue.events import Event

__all__ = ["Deliver", "Dispatcher", "ErrorHandler"]

log = logging.getLogger(__name__)

Deliver = Callable[[str, list[Event]], None]
ErrorHandler = Callable[[str, BaseException], None]


class Dispatcher:
    """Hands each plugin its inbox as one batch, from a small thread pool.

    A plugin is never given two batches at once; while one plugin's ``deliver`` runs, the
    other threads serve other plugins, higher priority first, round robin among equals.
    Exceptions from ``deliver`` go to ``on_error(plugin, exc)`` (the lifecycle manager faults
    the plugin) and never stop the dispatcher.

    Args:
        bus: the bus whose inboxes to serve.
        deliver: called with a plugin name and its batch, in a dispatcher thread.
        threads: pool size; that many slow plugins at once delay the rest.
        max_batch: the largest batch handed over at once.
        on_error: called when ``deliver`` raises; by default the error is logged.
    """

    def __init__(
        self,
        bus: EventBus,
        deliver: Deliver,
        *,
        threads: int = 4,
        max_batch: int = DEFAULT_INBOX,
        on_error: ErrorHandler | None = None,
        name: str = "rwq-dispatch",
    ) -> None:
        if threads < 1 or max_batch < 1:
            raise BusError("threads and max_batch must be at least 1")
        self.bus = bus
        self.deliver = deliver
        self.max_batch = max_batch
        self.on_error = on_error
        self.errors = 0
        self._cond = threading.Condition()
        self._ready: list[tuple[int, int, str]] = []
        self._scheduled: set[str] = set()
        """Plugins in ``_ready`` or being delivered to: each is in at most one place."""
        self._order = itertools.count()
        self._stopping = False
        bus.add_work_listener(self._on_work)
        for plugin in bus.ready():
            self._on_work(plugin)
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _on_work(self, plugin: str) -> None:
        with self._cond:
            if self._stopping or plugin in self._scheduled:
                return
            self._scheduled.add(plugin)
            self._push(plugin)

    def _push(self, plugin: str) -> None:
        heapq.heappush(self._ready, (-self.bus.priority(plugin), next(self._order), plugin))
        self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                plugin = heapq.heappop(self._ready)[2]
            batch = self.bus.drain(plugin, self.max_batch)
            failed = False
            if batch:
                try:
                    self.deliver(plugin, batch)
                except BaseException as exc:
                    failed = True
                    self._report(plugin, exc)
            with self._cond:
                self.errors += failed
                # Checked under the lock the work listener takes, so a publish between the
                # drain and here either finds the plugin scheduled or is seen by pending().
                if not self._stopping and self.bus.pending(plugin):
                    self._push(plugin)
                else:
                    self._scheduled.discard(plugin)

    def _report(self, plugin: str, exc: BaseException) -> None:
        if self.on_error is None:
            log.error("plugin %s failed to take events", plugin, exc_info=exc)
            return
        try:
            self.on_error(plugin, exc)
        except Exception:
            log.exception("dispatcher error handler failed for plugin %s", plugin)

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop taking batches and join the threads (a ``deliver`` in progress finishes)."""
        self.bus.remove_work_listener(self._on_work)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
