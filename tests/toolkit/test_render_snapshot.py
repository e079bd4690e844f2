"""Snapshots: a panel drawn as text at a fixed size, compared with a file or written to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rwq.host.render.text import frame_text, panel_text
from rwq.plugins.contract.ui import ElementError
from rwq.toolkit.snapshot import SnapshotError, compare_snapshot, parse_size, require_snapshot


def test_a_panel_is_drawn_in_its_border_at_the_size_asked() -> None:
    drawn = panel_text(
        "Jobs",
        [
            {"type": "text", "text": "hello \x1b[31m[bold]"},
            {"type": "table", "columns": ["queue", "n"], "rows": [["emails", 3]]},
            {"type": "button", "id": "go", "label": "Go", "key": "g"},
        ],
        40,
        8,
    )
    lines = drawn.splitlines()
    assert drawn.endswith("\n") and len(lines) == 8
    assert {len(line) for line in lines} == {40}
    assert lines[0] == "╭─ Jobs " + "─" * 31 + "╮"
    assert lines[1] == "│ " + "hello \\x1b[31m[bold]".ljust(36) + " │"  # escaped, not markup
    assert lines[-1] == "╰" + "─" * 38 + "╯"
    assert "[ Go ] (g)" in drawn


def test_lines_past_the_height_are_counted_on_the_bottom_edge() -> None:
    drawn = frame_text("T", [f"line {i}" for i in range(10)], 20, 5).splitlines()
    assert drawn[1:4] == ["│ line 0           │", "│ line 1           │", "│ line 2           │"]
    assert drawn[-1] == "╰─ 7 more lines ───╯"
    assert frame_text("T", ["a", "b"], 20, 5).splitlines()[-1] == "╰" + "─" * 18 + "╯"


def test_an_element_the_tui_refuses_is_not_drawn() -> None:
    with pytest.raises(ElementError):
        panel_text("T", [{"type": "text"}], 40, 8)


@pytest.mark.parametrize("text", ["80x24", "120X30", " 20x5 "])
def test_sizes_parse(text: str) -> None:
    width, height = parse_size(text)
    assert f"{width}x{height}" == text.strip().lower()


@pytest.mark.parametrize(
    ("text", "needle"),
    [("80", "expected COLUMNSxROWS"), ("axb", "expected"), ("10x24", "out of range"),
     ("80x2", "out of range")],
)  # fmt: skip
def test_bad_sizes_are_refused_naming_the_option(text: str, needle: str) -> None:
    with pytest.raises(SnapshotError, match=f"--size: .*{needle}"):
        parse_size(text)


def test_compare_match_mismatch_and_update(tmp_path: Path) -> None:
    path = tmp_path / "panel.snapshot"
    with pytest.raises(SnapshotError, match="does not exist: run the check with --update"):
        require_snapshot(path, update=False)
    require_snapshot(path, update=True)
    written = compare_snapshot(path, "a\nb\n", (20, 5), update=True)
    assert written.status == "written" and written.ok and path.read_text() == "a\nb\n"
    assert compare_snapshot(path, "a\nb\n", (20, 5)).status == "match"
    differs = compare_snapshot(path, "a\nc\n", (20, 5))
    assert differs.status == "mismatch" and not differs.ok
    assert "-b\n+c\n" in differs.diff and f"--- {path} (stored)" in differs.diff
    assert path.read_text() == "a\nb\n"
    rewritten = compare_snapshot(path, "a\nc\n", (20, 5), update=True)
    assert rewritten.status == "written" and "-b\n+c\n" in rewritten.diff
    assert path.read_text() == "a\nc\n"
    with pytest.raises(SnapshotError, match="is a directory"):
        require_snapshot(tmp_path, update=True)
    with pytest.raises(SnapshotError, match="does not exist"):
        require_snapshot(tmp_path / "nowhere" / "x.snapshot", update=True)
