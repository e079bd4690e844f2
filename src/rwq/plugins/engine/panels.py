"""Plugin panels: renders at the panel's size, capped and checked, made ahead by the delivery
that changed them while they are on screen, and input handed to the plugin."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rwq.plugins.contract.ui import cap_elements
from rwq.plugins.engine.calls import Calls, panel_changed
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.records import PluginRecord, PluginTable
from rwq.plugins.runtimes.base import Hook, PluginFault

PRERENDER_EVERY = 0.02
"""Seconds between two renders of a panel made right after ``on_event`` (see
:meth:`Panels.set_view`); changes coming faster are rendered by the panel's renderer."""

ElementValidator = Callable[[list[Any]], list[Any]]
"""Checks a panel's UI elements (raises ``ValueError`` naming the problem) and returns them;
the full UI schema check plugs in here."""


@dataclass(frozen=True)
class RenderResult:
    """What a panel shows: its UI elements, or why there are none."""

    elements: list[Any]
    state: PluginState
    error: str | None = None
    stale: bool = False
    """The plugin was busy; these are the elements of its last good render."""
    throttled: bool = False
    """The plugin is over its ``max_cpu`` budget: its events are held back meanwhile."""
    throttle_note: str = ""
    """Why, in figures (see :attr:`PluginSnapshot.throttle_note`)."""


class Panels:
    """Renders plugin panels and hands them input.

    Args:
        table: the plugin records.
        calls: calls into the plugins.
        element_validator: checks render results after the size caps.
    """

    def __init__(
        self, table: PluginTable, calls: Calls, element_validator: ElementValidator | None
    ) -> None:
        self._table = table
        self._calls = calls
        self._validator = element_validator

    def set_view(self, name: str, view: tuple[int, int, bool] | None) -> None:
        """Say that the panel of ``name`` is on screen at ``(width, height, focused)`` (None:
        not shown). While it is, a change ``on_event`` reports is rendered at once by the
        thread that delivered the events, in the same hold of the plugin, at most
        :data:`PRERENDER_EVERY` apart: the panel's renderer then finds the elements ready
        instead of waiting for the plugin."""
        rec = self._table.find(name)
        if rec is None:
            return
        with self._table.lock:
            rec.view = view
            if rec.prerendered is not None and rec.prerendered[1] != view:
                rec.prerendered = None

    def render(
        self, name: str, width: int, height: int, focused: bool, wait: float | None
    ) -> RenderResult:
        """The panel of ``name`` at this size: its UI elements, checked and capped.

        Args:
            wait: the longest to wait for the plugin if it is busy (None: until it is free);
                after that the last good render comes back marked ``stale``.
        """
        rec = self._table.get(name)
        if rec.state is not PluginState.ACTIVE:
            return RenderResult([], rec.state, rec.reason or f"the plugin is {rec.state.value}")
        view = (int(width), int(height), bool(focused))
        with self._table.lock:
            ready = rec.prerendered
            if ready is not None and ready[0] is rec.instance and ready[1] == view:
                rec.prerendered = None
                rec.dirty = False
                return RenderResult(ready[2], rec.state, throttled=rec.cpu_throttled,
                                    throttle_note=rec.throttle_note)  # fmt: skip
        if not rec.lock.acquire(timeout=-1 if wait is None else wait):
            return RenderResult(list(rec.last_render), rec.state, None, stale=True)
        try:
            if rec.state is not PluginState.ACTIVE or rec.instance is None:
                return RenderResult([], rec.state, rec.reason)
            arg = {"width": int(width), "height": int(height), "focused": bool(focused)}
            try:
                elements: list[Any] = self._calls.invoke(
                    rec, Hook.RENDER, arg, check=self._elements
                )
            except PluginFault as fault:
                return RenderResult([], rec.state, str(fault))
            with self._table.lock:
                rec.dirty = False
                rec.last_render = elements
            return RenderResult(elements, rec.state, throttled=rec.cpu_throttled,
                                throttle_note=rec.throttle_note)  # fmt: skip
        finally:
            rec.lock.release()

    def prerender(self, rec: PluginRecord) -> None:
        """Render the panel of ``rec`` now if it is on screen (rec.lock held, the events just
        handled): see :meth:`set_view`. Otherwise, or too soon after the last one, the panel's
        renderer will ask for a render itself."""
        with self._table.lock:
            view, instance = rec.view, rec.instance
            rec.prerendered = None  # older than the change just made
        now = time.monotonic()
        if (
            view is None
            or instance is None
            or Hook.RENDER not in rec.exports
            or now - rec.prerendered_at < PRERENDER_EVERY
        ):
            return
        arg = {"width": view[0], "height": view[1], "focused": view[2]}
        try:
            elements: list[Any] = self._calls.invoke(rec, Hook.RENDER, arg, check=self._elements)
        except PluginFault:
            return  # contained; the renderer renders again and shows what happened
        with self._table.lock:
            rec.prerendered = (instance, view, elements)
            rec.prerendered_at = now
            rec.last_render = elements

    def on_input(self, name: str, event: Mapping[str, Any]) -> bool:
        """Hand a key press, button or selection to the panel of ``name``; True when the
        panel changed (it is marked dirty)."""
        rec = self._table.get(name)
        with rec.lock:
            if rec.state is not PluginState.ACTIVE or Hook.ON_INPUT not in rec.exports:
                return False
            try:
                changed: bool = self._calls.invoke(
                    rec, Hook.ON_INPUT, dict(event), check=panel_changed
                )
            except PluginFault:
                return False
        if changed:
            self._table.mark_dirty(rec)
        return changed

    def dirty_panels(self) -> frozenset[str]:
        """Active plugins whose panel changed since its last render."""
        with self._table.lock:
            return frozenset(
                r.name for r in self._table.records() if r.dirty and r.state is PluginState.ACTIVE
            )

    def _elements(self, result: Any) -> list[Any]:
        elements = cap_elements(result)
        if self._validator is not None:
            elements = self._validator(elements)
        return elements
