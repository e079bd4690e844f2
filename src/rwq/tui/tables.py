"""Tables and status lines kept up to date in place: only what changed is written, so a
refresh every second neither flickers, loses the cursor, nor lays the screen out again.

Every cell and label is data (a queue's, a job's or a plugin's text): a string is shown as
written, never read as markup, and no control character reaches the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable, Label

from rwq.printable import plain_text, printable_text

Cell = Text | str


def cursor_key(table: DataTable[Cell]) -> str | None:
    """The key of the row under the cursor (None for an empty table)."""
    if table.row_count == 0:
        return None
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    return str(key.value) if key.value is not None else None


def sync_rows(
    table: DataTable[Cell], rows: Mapping[str, Sequence[Cell]], columns: Sequence[str]
) -> None:
    """Make ``table`` show ``rows`` (by key, in this order for new ones): changed cells are
    updated, new rows added, rows whose key is gone removed."""
    for row_key in list(table.rows):
        if row_key.value not in rows:
            table.remove_row(row_key)
    for key, raw in rows.items():
        cells = [shown(cell) for cell in raw]
        if key in table.rows:
            for column, cell in zip(columns, cells, strict=True):
                old = table.get_cell(key, column)
                if str(old) != str(cell) or _style(old) != _style(cell):
                    table.update_cell(key, column, cell)
        else:
            table.add_row(*cells, key=key)


def update_label(label: Label, content: Cell) -> None:
    """Show ``content`` in ``label`` unless it already does (an update is a new layout)."""
    if getattr(label, "_rwq_shown", None) != content:
        label._rwq_shown = content  # type: ignore[attr-defined]
        label.update(shown(content))


def shown(cell: Cell) -> Text:
    """A cell or label as drawn: a string as plain text, a :class:`Text` with its control
    characters escaped."""
    return plain_text(cell, multiline=True) if isinstance(cell, str) else printable_text(cell)


def _style(cell: object) -> str:
    return str(cell.style) if isinstance(cell, Text) else ""
