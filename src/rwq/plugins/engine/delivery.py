"""Events to plugins: the dispatcher hands each plugin its inbox in batches, held back and
coalesced while the plugin is over its CPU budget."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rwq.plugins.contract.events import SAMPLED
from rwq.plugins.engine.calls import Calls, panel_changed
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.records import PluginRecord, PluginTable
from rwq.plugins.engine.subscriptions import Subscriptions
from rwq.plugins.eventbus.bus import DEFAULT_INBOX, EventBus
from rwq.plugins.eventbus.dispatcher import Dispatcher
from rwq.plugins.runtimes.base import Hook, PluginFault
from rwq.queue.events import Event

log = logging.getLogger(__name__)


class Delivery:
    """Delivers the bus's events to the plugins' ``on_event``.

    Args:
        table: the plugin records.
        bus: the event bus whose inboxes are delivered.
        calls: calls into the plugins.
        subscriptions: checks a plugin may still receive (and drops its subscriptions if not).
        prerender: renders a panel on screen right after its events changed it.
        threads: dispatcher pool size.
        max_batch: most events handed to one ``on_event`` call.
    """

    def __init__(
        self,
        table: PluginTable,
        bus: EventBus,
        calls: Calls,
        subscriptions: Subscriptions,
        *,
        prerender: Callable[[PluginRecord], None],
        threads: int,
        max_batch: int,
    ) -> None:
        self._table = table
        self._bus = bus
        self._calls = calls
        self._subscriptions = subscriptions
        self._prerender = prerender
        self._threads = threads
        self._max_batch = max_batch
        self._dispatcher: Dispatcher | None = None

    def start(self) -> None:
        """Start the dispatcher threads."""
        self._dispatcher = Dispatcher(
            self._bus,
            self.deliver,
            threads=self._threads,
            max_batch=self._max_batch,
            on_error=_dispatch_failed,
            name="rwq-plugin-dispatch",
        )

    def stop(self) -> None:
        """Stop the dispatcher threads (if started)."""
        if self._dispatcher is not None:
            self._dispatcher.stop()

    def deliver(self, name: str, batch: list[Event]) -> None:
        """Hand ``batch`` (and any events held back before it) to the ``on_event`` of
        ``name``; unless it may not receive or is over its CPU budget."""
        rec = self._table.find(name)
        if rec is None:
            return
        with rec.lock:
            if (
                rec.state is not PluginState.ACTIVE
                or rec.slot is None
                or Hook.ON_EVENT not in rec.exports
            ):
                rec.metrics.discard(len(batch))
                return
            if not self._subscriptions.may_receive(name, rec.slot.binding):
                rec.metrics.discard(len(batch))
                self._subscriptions.sync(rec)
                return
            throttled = bool(getattr(rec.instance, "throttled", False))
            if throttled != rec.cpu_throttled:
                rec.cpu_throttled = throttled
                rec.throttle_note = _throttle_note(rec) if throttled else ""
                self._table.notify(name)  # its panel says so (or stops saying so)
            if throttled:
                # Over its max_cpu budget: hold the events back, coalesced, until it is under
                # again (the supervisor's poll hands them over then).
                rec.metrics.discard(_defer(rec, batch))
                return
            if rec.deferred:
                batch, rec.deferred = [*rec.deferred, *batch], []
            if not batch:
                return
            try:
                changed = self._calls.invoke(
                    rec, Hook.ON_EVENT, [e.to_dict() for e in batch], check=panel_changed
                )
            except PluginFault:
                return
            if changed:
                self._prerender(rec)
        if changed:
            self._table.mark_dirty(rec, prerendered=True)


def _defer(rec: PluginRecord, batch: list[Event]) -> int:
    """Add ``batch`` to the held-back events: sampled events keep only the latest per
    (type, queue), the rest the newest ``DEFAULT_INBOX``. Returns how many were dropped."""
    held: dict[tuple[str, str], Event] = {}
    kept: list[Event] = []
    for event in [*rec.deferred, *batch]:
        if event.type in SAMPLED:
            held[(event.type, event.queue)] = event
        else:
            kept.append(event)
    dropped = max(0, len(kept) - DEFAULT_INBOX)
    rec.deferred = [*kept[dropped:], *held.values()]
    return dropped


def _throttle_note(rec: PluginRecord) -> str:
    share = getattr(rec.instance, "cpu_share", None)
    budget = rec.manifest.resources.max_cpu if rec.manifest is not None else None
    if share is None or budget is None:
        return "over its CPU budget (resources.max_cpu)"
    percent, window = share
    return f"{percent:.1f}% CPU over {window:g}s > {budget:g}% budget (resources.max_cpu)"


def _dispatch_failed(plugin: str, exc: BaseException) -> None:
    log.error("delivering events to plugin %s failed", plugin, exc_info=exc)
