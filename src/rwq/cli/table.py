"""Tables for a terminal of any width: the columns that must stay whole stay whole, the others
are shortened, then left out, least useful first — no column shrinks to nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table

from rwq.printable import printable

_EDGES = 4
"""Cells a bordered table adds around its columns (two borders, their padding)."""
_BETWEEN = 3
"""Cells a bordered table adds between two columns (a border and its padding)."""


@dataclass(frozen=True)
class TableColumn:
    """One column: its header, its cells, and how it may give way on a narrow terminal."""

    name: str
    cells: Sequence[str]
    priority: int
    """0 is never shortened or left out; higher numbers give way first."""
    shortest: int = 0
    """Fewest cells it is shown with (0: its natural width, never shortened)."""
    widest: int = 0
    """Most cells it takes even when there is room (0: no limit)."""
    right: bool = False

    @property
    def natural(self) -> int:
        widest = max((cell_len(printable(c)) for c in self.cells), default=0)
        width = max(cell_len(self.name), widest)
        return min(width, self.widest) if self.widest else width


def fitted_table(title: str, columns: Sequence[TableColumn], width: int) -> Table:
    """A table of ``columns`` (in display order) no wider than ``width`` cells: columns are
    shortened first, least useful first; while that is not enough, the least useful is left
    out and the rest get their room back."""
    shown = list(columns)
    widths = _shortened(shown, width)
    while widths is None and any(c.priority for c in shown):
        shown.remove(max(shown, key=lambda c: c.priority))
        widths = _shortened(shown, width)
    table = Table(title=title)
    for column in shown:
        table.add_column(
            column.name,
            justify="right" if column.right else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=(widths or {}).get(column.name, column.natural),
        )
    for index in range(max((len(c.cells) for c in shown), default=0)):
        table.add_row(*(c.cells[index] if index < len(c.cells) else "" for c in shown))
    return table


def _shortened(shown: list[TableColumn], width: int) -> dict[str, int] | None:
    """Widths that fit ``shown`` into ``width`` cells, shortening the least useful columns
    first; None when even the shortest do not fit."""
    widths = {c.name: c.natural for c in shown}
    excess = sum(widths.values()) + _EDGES + _BETWEEN * (len(shown) - 1) - width
    for column in sorted(shown, key=lambda c: -c.priority):
        if excess <= 0:
            break
        if column.priority == 0 or not column.shortest:
            continue
        floor = max(column.shortest, cell_len(column.name))
        cut = min(excess, max(0, widths[column.name] - floor))
        widths[column.name] -= cut
        excess -= cut
    return widths if excess <= 0 else None
