"""The root of rwq's error tree; each subsystem subclasses it next to the code that raises."""

from __future__ import annotations


class RwqError(Exception):
    """Base class of every error rwq raises on purpose.

    The CLI prints ``str(error)`` as one line and exits non-zero, so messages name the file,
    field or argument at fault and say what to do.
    """


class ConfigError(RwqError):
    """A setting is malformed: names where it came from (file, variable or flag) and the
    field at fault (``""`` when the whole file is: missing, not YAML, not a mapping)."""

    def __init__(self, source: str, field: str, reason: str) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        super().__init__(f"{source}: {field}: {reason}" if field else f"{source}: {reason}")


class ConnectionFailed(RwqError):
    """The Redis server could not be reached or the URL is unusable."""
