"""The panel renderer: a busy plugin does not hold up the other panels, and a panel's border says
what else its plugin goes through (throttled, dropping events)."""

from __future__ import annotations

import time
from typing import Any

from rwq.host.render import renderer as panels
from rwq.host.render.renderer import BUSY, PanelRenderer, about, drop_note
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import RenderResult
from rwq.plugins.eventbus.bus import EventBus
from rwq.queue.events import Event

ELEMENTS = [{"type": "text", "text": "hello"}]


class Plugins:
    """Stands in for the plugin manager's ``render``: ``busy`` plugins are in another hook."""

    def __init__(self) -> None:
        self.busy: set[str] = set()
        self.waits: list[tuple[str, float | None]] = []
        self.views: dict[str, Any] = {}
        self.throttled: set[str] = set()
        self.bus = EventBus(maxlen=10)

    def set_view(self, name: str, view: Any) -> None:
        self.views[name] = view

    def render(self, name: str, width: int, height: int, focused: bool, *, wait: Any) -> Any:
        self.waits.append((name, wait))
        if name in self.busy and not wait:
            return RenderResult(ELEMENTS, PluginState.ACTIVE, stale=True)
        return RenderResult(ELEMENTS, PluginState.ACTIVE, throttled=name in self.throttled)


def renderer(plugins: Plugins) -> PanelRenderer:
    return PanelRenderer(
        plugins,  # type: ignore[arg-type]
        sizes=lambda name: (40, 5, False),
        deliver=lambda frames: None,
        cursors=lambda name: None,
    )


def test_a_busy_plugin_is_skipped_and_tried_again(monkeypatch: Any) -> None:
    plugins = Plugins()
    r = renderer(plugins)
    plugins.busy.add("slow")
    assert r.frame("slow") is BUSY
    assert plugins.waits[-1] == ("slow", 0)  # not waited for
    frame = r.frame("quick")
    assert frame is not None and frame is not BUSY and frame.lines is not None
    plugins.busy.clear()
    frame = r.frame("slow")
    assert frame is not None and frame is not BUSY
    assert plugins.views == {"slow": (40, 5, False), "quick": (40, 5, False)}  # told what shows


def test_a_plugin_busy_for_long_is_waited_for(monkeypatch: Any) -> None:
    plugins = Plugins()
    r = renderer(plugins)
    plugins.busy.add("slow")
    now = [100.0]
    monkeypatch.setattr(panels.time, "monotonic", lambda: now[0])
    assert r.frame("slow") is BUSY
    now[0] += panels.BUSY_PATIENCE + 0.1
    frame = r.frame("slow")
    assert plugins.waits[-1] == ("slow", panels.BUSY_WAIT)
    assert frame is not None and frame is not BUSY


def test_a_throttled_plugin_says_so_on_its_panel() -> None:
    plugins = Plugins()
    plugins.throttled.add("hot")
    r = renderer(plugins)
    hot = r.frame("hot")
    assert hot is not None and hot is not BUSY
    assert panels.THROTTLED_NOTE in hot.note
    assert hot.view is not None and hot.lines is not None  # its last elements still show
    cool = r.frame("cool")
    assert cool is not None and cool.note == ""


def test_a_panel_says_how_many_events_its_plugin_dropped_and_since_when() -> None:
    plugins = Plugins()
    plugins.bus.subscribe("busy", "job.*")
    r = renderer(plugins)
    quiet = r.frame("busy")
    assert quiet is not None and quiet is not BUSY and quiet.note == ""
    events = [Event("job.completed", float(i), "queue", "q", {}) for i in range(2510)]
    plugins.bus.publish_many(events)  # nobody drains the inbox of 10: 2,500 dropped
    frame = r.frame("busy")
    assert frame is not None and frame is not BUSY
    assert frame.note.startswith("dropping events: 2.5k lost since ")
    assert frame.lines is not None  # the panel still shows its elements
    first = plugins.bus.stats("busy").first_drop
    assert frame.note.endswith(time.strftime("%H:%M:%S", time.localtime(first)))


def test_the_drop_note_counts_roughly_and_says_when_drops_stopped() -> None:
    assert [about(n) for n in (0, 999, 1000, 24_113, 1_234_567)] == [
        "0",
        "999",
        "1.0k",
        "24k",
        "1.2M",
    ]
    assert drop_note((0, 0.0, 0.0), 1000.0) == ""
    stats = (24_113, 1000.0, 1030.0)
    since, until = (time.strftime("%H:%M:%S", time.localtime(t)) for t in (1000.0, 1030.0))
    assert drop_note(stats, 1031.0) == f"dropping events: 24k lost since {since}"
    assert drop_note(stats, 1030.0 + panels.DROPS_RECENT + 1) == (
        f"dropped 24k events {since}-{until}"
    )
