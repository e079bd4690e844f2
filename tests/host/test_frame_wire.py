"""Panel frames as they cross from the plugin host process: lines the plugin's previous frame
had are sent as references, the UI rebuilds every frame exactly."""

from __future__ import annotations

import pickle
from typing import Any

from rwq.host.frame_wire import FrameDecoder, FrameEncoder, WireFrame
from rwq.host.render.elements import build_panel
from rwq.host.render.renderer import PanelFrame
from rwq.plugins.engine.lifecycle import PluginState


def table(first: int, rows: int = 6, *, selectable: bool = False) -> list[dict[str, Any]]:
    """A panel whose table rows move down a line as a new one comes in on top (a selectable
    table's rows also carry their index, so they change as they move)."""
    element: dict[str, Any] = {
        "type": "table", "columns": ["job", "ms"],
        "rows": [[f"j{n}", n * 7 % 100] for n in range(first, first - rows, -1)],
    }  # fmt: skip
    if selectable:
        element["id"] = "jobs"
    return [{"type": "text", "text": f"newest j{first}"}, element]


def frame(plugin: str, elements: list[dict[str, Any]], width: int = 30, seq: int = 0) -> PanelFrame:
    view = build_panel(elements, width)
    assert view.renderable.__class__.__name__ == "SegmentLines"
    return PanelFrame(plugin, view, PluginState.ACTIVE, "", 0.1, view.renderable, seq=seq)  # type: ignore[arg-type]


def across(encoder: FrameEncoder, decoder: FrameDecoder, frames: list[PanelFrame]) -> Any:
    """What the UI gets, through a pickle as on the channel; and what was sent."""
    wire = encoder.encode(frames)
    return decoder.decode(pickle.loads(pickle.dumps(wire))), wire


def test_every_frame_arrives_as_it_was_drawn() -> None:
    encoder, decoder = FrameEncoder(), FrameDecoder()
    sent = [frame("a", table(n, selectable=n % 2 == 0), seq=n) for n in range(10, 20)]
    sent.insert(4, PanelFrame("a", None, PluginState.DISABLED, "disabled", 0.0))  # no lines
    sent.append(frame("a", table(30), width=24, seq=99))  # another width
    for original in sent:
        [got], _ = across(encoder, decoder, [original])
        if original.lines is None:
            assert got == original
            continue
        assert got.lines is not None and got.view is not None
        assert got.lines.lines == original.lines.lines
        assert (got.lines.width, got.lines.lengths) == (
            original.lines.width,
            original.lines.lengths,
        )
        assert got.view.targets == original.view.targets  # type: ignore[union-attr]
        assert (got.seq, got.state, got.note, got.plugin) == (
            original.seq, original.state, original.note, original.plugin
        )  # fmt: skip


def test_lines_seen_in_the_previous_frame_are_sent_as_references() -> None:
    encoder, decoder = FrameEncoder(), FrameDecoder()
    [first], wire = across(encoder, decoder, [frame("a", table(10))])
    assert all(isinstance(line, list) for line in wire[0].lines)  # nothing to refer to yet
    [second], wire = across(encoder, decoder, [frame("a", table(11))])
    sent = wire[0]
    assert isinstance(sent, WireFrame)
    new = [line for line in sent.lines if not isinstance(line, int)]
    assert len(new) == 2  # the text line and the new top row; the rest moved down
    assert first.lines is not None and second.lines is not None
    # the lines the UI had are reused as they are (its painted-line cache finds them)
    reused = {id(line) for line in first.lines.lines}
    assert sum(id(line) in reused for line in second.lines.lines) == len(sent.lines) - 2


def test_plugins_are_followed_apart_and_a_frame_without_lines_starts_over() -> None:
    encoder, decoder = FrameEncoder(), FrameDecoder()
    across(encoder, decoder, [frame("a", table(10)), frame("b", table(50))])
    [a, b], wire = across(encoder, decoder, [frame("a", table(11)), frame("b", table(51))])
    assert a.lines.lines == frame("a", table(11)).lines.lines  # type: ignore[union-attr]
    assert b.lines.lines == frame("b", table(51)).lines.lines  # type: ignore[union-attr]
    across(encoder, decoder, [PanelFrame("a", None, PluginState.ERROR, "faulted", 0.0)])
    [a], wire = across(encoder, decoder, [frame("a", table(11))])
    assert all(isinstance(line, list) for line in wire[0].lines)
    assert a.lines.lines == frame("a", table(11)).lines.lines  # type: ignore[union-attr]
