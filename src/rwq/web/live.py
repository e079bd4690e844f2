"""The live feed of one ``rwq web`` process: queue statistics once a second, plugin states, and
every plugin panel as HTML the moment it changes, fanned out to every browser tab.

One feed per process, whatever the number of tabs: one statistics read a second, one panel
renderer over the process's one plugin host, each panel drawn into HTML once per change. Each
subscriber (a ``GET /api/v1/stream``) keeps only the latest message per key (a panel, the
statistics): a slow tab skips the frames it could not take and gets the newest, so no tab
falls behind by more than one message per key, and a stalled one costs the others nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rwq.host.render.renderer import PanelFrame
from rwq.plugins.engine.lifecycle import PluginState
from rwq.printable import printable
from rwq.web.panel_html import PanelHtml, panel_html

if TYPE_CHECKING:
    from rwq.host.local import LocalPluginHost
    from rwq.host.render.renderer import PanelRenderer
    from rwq.web.access import Principal
    from rwq.web.context import WebContext

__all__ = ["LiveFeed", "PanelUpdate", "Subscriber", "sse"]

log = logging.getLogger("rwq.web")

PANEL_SIZE = (80, 24, False)
"""The ``render`` size a plugin gets for its web panel (columns, rows, focused): a browser
panel has no cells, so plugins draw for a common terminal's size."""
STATS_EVERY = 1.0
"""Seconds between two statistics reads (and looks at the plugins' states)."""
PANEL_LEASE = 60.0
"""Seconds panels are drawn after a ``GET /api/v1/panels`` with no stream watching them."""
FIRST_FRAMES_WAIT = 2.0
"""Seconds such a request waits for the panels' first frames when none were being drawn."""


def sse(kind: str, data: Any) -> str:
    """One Server-Sent Events message (``data`` as one line of JSON: ``json.dumps`` escapes
    every line break a plugin's text could hold)."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass(frozen=True)
class PanelUpdate:
    """The latest state of one plugin's panel, as sent and as clicks are checked against."""

    plugin: str
    seq: int
    at: float
    state: str
    note: str
    view: PanelHtml | None
    data: dict[str, Any]
    """What is sent (``PanelOut``)."""
    message: str
    """The SSE message (``event: panel``)."""


@dataclass(eq=False)
class Subscriber:
    """One live stream: what it may see, and its latest unsent message per key."""

    principal: Principal
    panels: bool
    """Whether it sees plugin panels (they show what their plugins read of every queue)."""
    plugins: bool
    """Whether it sees the plugins' states (``system.config.read``)."""
    pending: dict[str, str] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: int = 0
    skipped: int = 0
    """Messages replaced by a newer one of the same key before they were sent."""

    def offer(self, key: str, message: str) -> None:
        if key in self.pending:
            self.skipped += 1
        self.pending[key] = message
        self.ready.set()

    async def take(self, timeout: float) -> list[str]:
        """The messages waiting (waiting up to ``timeout`` seconds for one); [] on timeout."""
        if not self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)
        self.ready.clear()
        messages = list(self.pending.values())
        self.pending.clear()
        self.delivered += len(messages)
        return messages


class LiveFeed:
    """The process's live feed (started and stopped with the app)."""

    def __init__(self, context: WebContext, *, stats_every: float = STATS_EVERY) -> None:
        self.context = context
        self.stats_every = stats_every
        self.subscribers: set[Subscriber] = set()
        self.panels: dict[str, PanelUpdate] = {}
        """The latest update of each panel (read by the click route on the event loop)."""
        self.lock = threading.Lock()
        """Guards :attr:`panels` (written on the renderer's thread)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._renderer: PanelRenderer | None = None
        self._watchers = 0
        """Subscribers that see panels: the renderer draws while there are some..."""
        self._leased_until = 0.0
        """... or until this time (monotonic), after a program asked for the panels."""
        self._drawn: set[str] = set()
        """Panels drawn since a lease last started the drawing (guarded by :attr:`lock`)..."""
        self._awaited: set[str] = set()
        """... and the plugins whose first frame it waits for (guarded by :attr:`lock`)."""
        self._lease_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stats: str | None = None
        self._stats_data: dict[str, Any] | None = None
        self._plugins: str | None = None
        self._known: set[str] = set()
        self.ending = False
        """The server is stopping: every stream ends (see :meth:`end_streams`)."""

    @property
    def host(self) -> LocalPluginHost | None:
        return self.context.host

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        host = self.host
        if host is not None:
            self._renderer = host.renderer(self._size, self._deliver, _no_cursor, draws=False)
            self._renderer.start()
        self._task = asyncio.create_task(self._poll(), name="rwq-live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._renderer is not None:
            await asyncio.to_thread(self._renderer.stop)
            self._renderer = None
        for subscriber in self.subscribers:
            subscriber.ready.set()

    def end_streams(self) -> None:
        """End every stream now (the server is shutting down: it waits for them)."""
        self.ending = True
        for subscriber in self.subscribers:
            subscriber.ready.set()

    # -- subscribers ---------------------------------------------------------------------------

    def subscribe(self, principal: Principal) -> Subscriber:
        """A new stream for ``principal``, primed with the latest of everything it may see."""
        token = principal.token
        panels = (
            self.host is not None and principal.holds("admin.stats.read") and token.scope.all_queues
        )
        plugins = self.host is not None and principal.holds("system.config.read")
        subscriber = Subscriber(principal, panels, plugins)
        subscriber.offer("hello", sse("hello", {
            "at": time.time(), "panels": panels, "plugins": plugins,
            "hosted": self.host is not None, "token": token.name,
        }))  # fmt: skip
        if self._stats_data is not None:
            self._offer_stats(subscriber, self._stats_data, self._stats)
        if plugins and self._plugins is not None:
            subscriber.offer("plugins", self._plugins)
        if panels:
            with self.lock:
                latest = list(self.panels.values())
            for update in latest:
                subscriber.offer(f"panel:{update.plugin}", update.message)
            drawing = self._drawing()
            self._watchers += 1
            if not drawing and self._renderer is not None and self.host is not None:
                self._renderer.mark_all(self.host.plugins())
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            if subscriber.panels:
                self._watchers -= 1

    # -- panels (the renderer's thread) --------------------------------------------------------

    def lease_panels(self) -> None:
        """Draw the panels for :data:`PANEL_LEASE` seconds from now even with no stream
        watching (a program reading ``GET /api/v1/panels``, then clicking). When none were
        being drawn, every request waits up to :data:`FIRST_FRAMES_WAIT` for a fresh frame of
        each plugin (blocking: called on a worker thread)."""
        host, renderer = self.host, self._renderer
        if host is None or renderer is None:
            return
        with self._lease_lock:  # one request starts the drawing; the others wait with it
            starting = not self._drawing()
            plugins = set(host.plugins())
            if starting:  # before the lease: no frame drawn earlier counts as a fresh one
                with self.lock:
                    self._drawn.clear()
                    self._awaited = plugins
                for plugin in plugins:
                    renderer.forget(plugin)  # delivered even when unchanged since last time
            self._leased_until = time.monotonic() + PANEL_LEASE
            if starting:
                renderer.mark_all(plugins)
        deadline = time.monotonic() + FIRST_FRAMES_WAIT
        while time.monotonic() < deadline:
            present = set(host.plugins())
            with self.lock:
                if self._awaited & present <= self._drawn:
                    return
            time.sleep(0.02)

    def _drawing(self) -> bool:
        return self._watchers > 0 or time.monotonic() < self._leased_until

    def _size(self, _plugin: str) -> tuple[int, int, bool] | None:
        return PANEL_SIZE if self._drawing() else None

    def _deliver(self, frames: list[PanelFrame]) -> None:
        updates = [self._update(frame) for frame in frames]
        with self.lock:
            for update in updates:
                self.panels[update.plugin] = update
                self._drawn.add(update.plugin)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._publish_panels, updates)

    def _update(self, frame: PanelFrame) -> PanelUpdate:
        note = frame.note
        view = None
        if frame.elements is not None and (frame.elements or frame.state is PluginState.ACTIVE):
            try:
                view = panel_html(frame.elements)
            except (ValueError, TypeError, KeyError) as exc:  # validated: a bug, not the plugin
                note = f"cannot draw: {exc}"
        at = time.time()
        data = {
            "plugin": frame.plugin,
            "title": self._title(frame.plugin),
            "seq": frame.seq,
            "at": at,
            "state": frame.state.value,
            "note": printable(note),
            "html": view.html if view is not None else None,
            "targets": [
                {"kind": t.kind, "id": printable(t.id), "index": t.index,
                 "label": printable(t.value), "key": None if t.key is None else printable(t.key)}
                for t in (view.targets if view is not None else ())
            ],
        }  # fmt: skip
        return PanelUpdate(frame.plugin, frame.seq, at, frame.state.value, note, view, data,
                           sse("panel", data))  # fmt: skip

    def _title(self, plugin: str) -> str:
        manifest = self.host.manifest(plugin) if self.host is not None else None
        ui = manifest.ui if manifest is not None else None
        return printable(ui.panel_title if ui is not None and ui.panel_title else plugin)

    def _publish_panels(self, updates: list[PanelUpdate]) -> None:
        for subscriber in self.subscribers:
            if subscriber.panels:
                for update in updates:
                    subscriber.offer(f"panel:{update.plugin}", update.message)

    # -- statistics and plugin states (the event loop) -----------------------------------------

    async def _poll(self) -> None:
        while True:
            if self.subscribers:
                try:
                    await self._poll_once()
                except Exception:  # Redis away: the next round tries again
                    log.warning("live feed: could not read statistics", exc_info=True)
            await asyncio.sleep(self.stats_every)

    async def _poll_once(self) -> None:
        stats = await asyncio.to_thread(lambda: self.context.admin.stats().to_dict())
        stats["at"] = time.time()
        message = sse("stats", stats)
        self._stats, self._stats_data = message, stats
        for subscriber in self.subscribers:
            self._offer_stats(subscriber, stats, message)
        host = self.host
        if host is None:
            return
        plugins = await asyncio.to_thread(self._plugin_states, host)
        message = sse("plugins", plugins)
        if message != self._plugins:
            self._plugins = message
            for subscriber in self.subscribers:
                if subscriber.plugins:
                    subscriber.offer("plugins", message)
        names = {p["name"] for p in plugins["plugins"]}
        gone = self._known - names
        self._known = names
        for name in gone:
            with self.lock:
                self.panels.pop(name, None)
            for subscriber in self.subscribers:
                if subscriber.panels:
                    subscriber.offer(f"panel:{name}", sse("panel-gone", {"plugin": name}))

    @staticmethod
    def _plugin_states(host: LocalPluginHost) -> dict[str, Any]:
        waiting: dict[str, int] = {}
        for approval in host.pending_approvals():
            waiting[approval.plugin] = waiting.get(approval.plugin, 0) + 1
        plugins = [
            {"name": s.name, "version": s.version, "runtime": s.runtime,
             "state": s.state.value, "reason": printable(s.reason),
             "approvals": waiting.get(s.name, 0)}
            for s in host.snapshot()
        ]  # fmt: skip
        return {"plugins": plugins}

    @staticmethod
    def _offer_stats(subscriber: Subscriber, stats: dict[str, Any], message: str | None) -> None:
        principal = subscriber.principal
        if not principal.holds("admin.stats.read"):
            return
        if principal.token.scope.all_queues and message is not None:
            subscriber.offer("stats", message)
            return
        mine = {
            **stats,
            "queues": [q for q in stats["queues"] if principal.allows_queue(q["queue"])],
        }
        subscriber.offer("stats", sse("stats", mine))


def _no_cursor(_plugin: str) -> int | None:
    return None
