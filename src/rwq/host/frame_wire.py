"""How panel frames cross from the plugin host process to the screen's process: each line
sent as a reference to the same line of the plugin's previous frame, or as new segments."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.segment import Segment

from rwq.host.render.elements import PanelView, SegmentLines
from rwq.host.render.renderer import PanelFrame

Line = list[Segment]
WireLine = int | Line
"""An index into the plugin's previous frame's lines, or a new line's segments."""


@dataclasses.dataclass(frozen=True)
class WireFrame:
    """A frame as sent: without its view and lines, which ``lines`` and ``targets`` carry."""

    frame: PanelFrame
    targets: tuple[Any, ...]
    width: int
    lengths: list[int] | None
    lines: list[WireLine]


class FrameEncoder:
    """The plugin host's end: remembers each plugin's last lines sent.

    The channel is ordered and loses nothing, so the two ends stay in step; a frame without
    lines resets the plugin on both ends.
    """

    def __init__(self) -> None:
        self._sent: dict[str, dict[tuple[Segment, ...], int]] = {}

    def encode(self, frames: list[PanelFrame]) -> list[PanelFrame | WireFrame]:
        return [self._one(frame) for frame in frames]

    def _one(self, frame: PanelFrame) -> PanelFrame | WireFrame:
        lines, view = frame.lines, frame.view
        if lines is None or view is None:
            self._sent.pop(frame.plugin, None)
            return frame
        previous = self._sent.get(frame.plugin, {})
        known: dict[tuple[Segment, ...], int] = {}
        wire: list[WireLine] = []
        for y, line in enumerate(lines.lines):
            key = tuple(line)
            known.setdefault(key, y)
            at = previous.get(key)
            wire.append(at if at is not None else line)
        self._sent[frame.plugin] = known
        bare = dataclasses.replace(frame, view=None, lines=None)
        return WireFrame(bare, view.targets, lines.width, lines.lengths, wire)


class FrameDecoder:
    """The UI's end: rebuilds each frame from the lines of the plugin's previous one."""

    def __init__(self) -> None:
        self._received: dict[str, list[Line]] = {}

    def decode(self, frames: list[PanelFrame | WireFrame]) -> list[PanelFrame]:
        return [self._one(frame) for frame in frames]

    def _one(self, wire: PanelFrame | WireFrame) -> PanelFrame:
        if isinstance(wire, PanelFrame):
            self._received.pop(wire.plugin, None)
            return wire
        plugin = wire.frame.plugin
        previous = self._received.get(plugin, [])
        lines = [previous[item] if isinstance(item, int) else item for item in wire.lines]
        self._received[plugin] = lines
        drawn = SegmentLines(lines, wire.width, wire.lengths)
        return dataclasses.replace(wire.frame, view=PanelView(drawn, wire.targets), lines=drawn)
