"""Render snapshots: a plugin's panel drawn as text (:mod:`rwq.host.render.text`) compared
with a file holding the expected drawing, or written to it."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rwq.atomic_file import write_atomically
from rwq.errors import RwqError
from rwq.host.render.text import MIN_SIZE

__all__ = [
    "DEFAULT_SIZE",
    "SnapshotError",
    "SnapshotResult",
    "compare_snapshot",
    "not_rendered",
    "parse_size",
    "require_snapshot",
]

DEFAULT_SIZE = (80, 24)
"""The panel a snapshot draws by default (columns, rows): a two-column grid's panel."""
MAX_SIZE = (1000, 1000)

Status = Literal["match", "mismatch", "written", "not_rendered"]


class SnapshotError(RwqError):
    """A snapshot argument or file is unusable: names the option or file."""


@dataclass(frozen=True)
class SnapshotResult:
    """How the panel compared with its snapshot file."""

    path: Path
    size: tuple[int, int]
    status: Status
    diff: str = ""
    """A unified diff from the stored drawing to this one, when they differ."""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("match", "written")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": f"{self.size[0]}x{self.size[1]}",
            "status": self.status,
            "diff": self.diff,
            "reason": self.reason,
        }


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``"80x24"`` as ``(80, 24)``.

    Raises:
        SnapshotError: not ``WxH``, or smaller than :data:`MIN_SIZE`.
    """
    match = re.fullmatch(r"\s*(\d{1,4})\s*[xX]\s*(\d{1,4})\s*", text)
    if match is None:
        raise SnapshotError(f"{option}: expected COLUMNSxROWS such as 80x24, got {text!r}")
    width, height = int(match[1]), int(match[2])
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise SnapshotError(
            f"{option}: {width}x{height} is out of range "
            f"({MIN_SIZE[0]}x{MIN_SIZE[1]} to {MAX_SIZE[0]}x{MAX_SIZE[1]})"
        )
    return width, height


def require_snapshot(path: Path, *, update: bool) -> None:
    """Refuse, before the check runs, a snapshot that cannot be compared or written.

    Raises:
        SnapshotError: the file is missing (without ``update``), a directory, or its
            directory is missing.
    """
    if path.is_dir():
        raise SnapshotError(f"--snapshot: {path} is a directory, not a file")
    if update:
        if not path.parent.is_dir():
            raise SnapshotError(f"--snapshot: the directory {path.parent} does not exist")
        return
    if not path.exists():
        raise SnapshotError(
            f"--snapshot: {path} does not exist: run the check with --update to write it"
        )


def compare_snapshot(
    path: Path, drawn: str, size: tuple[int, int], *, update: bool = False
) -> SnapshotResult:
    """Compare ``drawn`` with the snapshot at ``path``, or write it there when ``update``.

    Raises:
        SnapshotError: the file cannot be read or written.
    """
    if update:
        try:
            old = path.read_text(encoding="utf-8") if path.exists() else None
            if old != drawn:
                write_atomically(path, drawn.encode())
        except (OSError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"--snapshot: cannot write {path}: {exc}") from None
        status: Status = "match" if old == drawn else "written"
        return SnapshotResult(path, size, status, _diff(old or "", drawn, path) if old else "")
    try:
        stored = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SnapshotError(
            f"--snapshot: {path} does not exist: run the check with --update to write it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"--snapshot: cannot read {path}: {exc}") from None
    if stored == drawn:
        return SnapshotResult(path, size, "match")
    return SnapshotResult(path, size, "mismatch", _diff(stored, drawn, path))


def not_rendered(path: Path, size: tuple[int, int], reason: str) -> SnapshotResult:
    """The result when the check produced no render to compare."""
    return SnapshotResult(path, size, "not_rendered", reason=reason)


def _diff(stored: str, drawn: str, path: Path) -> str:
    lines = difflib.unified_diff(
        stored.splitlines(keepends=True),
        drawn.splitlines(keepends=True),
        fromfile=f"{path} (stored)",
        tofile=f"{path} (rendered)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
