"""The permission catalog: every capability a plugin may ask for, in one place.

Each permission has a level; a grant of a level implies every permission of the levels below
it (an operator may do what an observer may). Sensitive permissions are never granted by a
level alone: they must be approved by name. The approval dialog, ``rwq plugin grant`` and the
host API all read this module; ``docs/permissions.md`` is generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from rwq.errors import RwqError


class Level(IntEnum):
    """Permission levels, lowest first; a higher level implies the lower ones."""

    OBSERVER = 1
    OPERATOR = 2
    ADMINISTRATOR = 3
    SYSTEM = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Permission:
    """One capability a plugin may request."""

    name: str
    level: Level
    description: str
    """One line for the approval prompt."""
    sensitive: bool = False
    """Must be approved by name; a level grant does not imply it."""
    queue_scoped: bool = False
    """Whether a grant may be limited to queue globs (and checks pass the queue)."""


CATALOG: dict[str, Permission] = {
    p.name: p
    for p in (
        Permission("events.subscribe", Level.OBSERVER,
                   "Receive queue, worker and plugin events", queue_scoped=True),
        Permission("admin.stats.read", Level.OBSERVER,
                   "Read queue statistics (depths, throughput, ages)", queue_scoped=True),
        Permission("admin.system.stats", Level.OBSERVER,
                   "Read host and Redis health (memory, CPU, latency)"),
        Permission("ui.notifications", Level.OBSERVER, "Show notifications in the TUI"),
        Permission("storage.read", Level.OBSERVER, "Read the plugin's own stored data"),
        Permission("storage.write", Level.OBSERVER, "Write the plugin's own stored data"),
        Permission("admin.queue.peek", Level.OPERATOR,
                   "Read job contents (payloads may hold customer data)",
                   sensitive=True, queue_scoped=True),
        Permission("admin.queue.enqueue", Level.OPERATOR, "Enqueue new jobs",
                   queue_scoped=True),
        Permission("admin.job.requeue", Level.OPERATOR,
                   "Requeue a single dead-lettered job", queue_scoped=True),
        Permission("admin.alerts.send", Level.OPERATOR,
                   "Send alerts to other plugins and alert channels", sensitive=True),
        Permission("admin.queue.requeue", Level.ADMINISTRATOR,
                   "Requeue dead-lettered jobs in bulk", sensitive=True, queue_scoped=True),
        Permission("admin.queue.purge", Level.ADMINISTRATOR,
                   "Delete jobs from queues permanently", sensitive=True, queue_scoped=True),
        Permission("admin.queue.pause", Level.ADMINISTRATOR,
                   "Pause and resume queues", queue_scoped=True),
        Permission("system.config.read", Level.SYSTEM, "Read rwq's configuration",
                   sensitive=True),
        Permission("system.plugins.manage", Level.SYSTEM,
                   "Enable, disable and reload other plugins", sensitive=True),
    )
}  # fmt: skip


class UnknownPermission(RwqError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"unknown permission {name!r} (known: {', '.join(sorted(CATALOG))}, "
            f"or a level: {', '.join(level.label for level in Level)})"
        )


def get(name: str) -> Permission:
    """The catalog entry for ``name``; raises :class:`UnknownPermission`."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownPermission(name) from None


def implied_by_level(level: Level) -> frozenset[str]:
    """The permissions a grant of ``level`` implies: every non-sensitive permission at or
    below it."""
    return frozenset(p.name for p in CATALOG.values() if p.level <= level and not p.sensitive)


def expand(names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Permission names and level names (``observer``...) expanded to permission names."""
    out: set[str] = set()
    for name in names:
        try:
            level = Level[name.upper()]
        except KeyError:
            out.add(get(name).name)
        else:
            out |= implied_by_level(level)
    return frozenset(out)


def render_markdown() -> str:
    """The text of ``docs/permissions.md``."""
    lines = [
        "# Plugin permissions",
        "",
        "<!-- Generated from src/rwq/plugins/contract/permissions.py by `make docs`. -->",
        "",
        "A plugin lists the permissions it needs in its manifest; the user approves them (or a",
        "policy file pre-grants them). Granting a level (`observer`, `operator`,",
        "`administrator`, `system`) grants every non-sensitive permission at or below it;",
        "sensitive permissions must be approved by name. Queue-scoped permissions may be",
        "limited to queue globs.",
        "",
        "| permission | level | sensitive | queue-scoped | description |",
        "|---|---|---|---|---|",
    ]
    for p in sorted(CATALOG.values(), key=lambda p: (p.level, p.name)):
        lines.append(
            f"| `{p.name}` | {p.level.label} | {'yes' if p.sensitive else ''} | "
            f"{'yes' if p.queue_scoped else ''} | {p.description} |"
        )
    lines.append("")
    return "\n".join(lines)
