"""The messages between a screen and its plugin host process, and errors that cross between them
with their type and fields."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.errors import RwqError

__all__ = [
    "Call",
    "ErrorInfo",
    "Failed",
    "Forget",
    "Frames",
    "Init",
    "Message",
    "Notification",
    "Raised",
    "Ready",
    "RemoteError",
    "Returned",
    "Stop",
    "View",
]


class RemoteError(RwqError):
    """An error of the plugin host process that is not one of rwq's own (a bug there)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"{kind}: {message}" if message else kind)


_SIMPLE = (str, int, float, bool, type(None))


def _simple(value: Any) -> bool:
    if isinstance(value, _SIMPLE):
        return True
    if isinstance(value, tuple | list | frozenset | set):
        return all(isinstance(item, _SIMPLE) for item in value)
    return False


@dataclass(frozen=True)
class ErrorInfo:
    """An exception as it crosses: its class by name, its message and its plain fields."""

    type: str
    """``module.QualName`` of its class."""
    message: str
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        kind = type(exc)
        fields = {k: v for k, v in vars(exc).items() if not k.startswith("_") and _simple(v)}
        return cls(f"{kind.__module__}.{kind.__qualname__}", str(exc), fields)

    def rebuild(self) -> RwqError:
        """The same error on this side: an instance of its own class when that is one of
        rwq's errors (its fields set, its ``__init__`` not run), else a :class:`RemoteError`."""
        kind = _rwq_error_class(self.type)
        if kind is None:
            return RemoteError(self.type.rsplit(".", 1)[-1], self.message)
        error = kind.__new__(kind)
        Exception.__init__(error, self.message)
        error.__dict__.update(self.fields)
        return error


def _rwq_error_class(name: str) -> type[RwqError] | None:
    module, _, qualname = name.rpartition(".")
    if module != "rwq" and not module.startswith("rwq."):
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    if isinstance(found, type) and issubclass(found, RwqError):
        return found
    return None


# -- from the screen -------------------------------------------------------------------------


@dataclass(frozen=True)
class Init:
    """First message: which plugins to host and how."""

    settings: Settings
    policy_path: Path | None
    watch: bool
    with_installed: bool = True
    granted_as_asked: frozenset[str] = frozenset()
    """The :class:`rwq.host.build.HostOptions` fields of the same names."""


@dataclass(frozen=True)
class View:
    """A panel on screen at this body size and focus (None: no longer shown), its cursor."""

    plugin: str
    size: tuple[int, int, bool] | None
    cursor: int | None


@dataclass(frozen=True)
class Forget:
    """Send the next frame of ``plugin`` even if it looks like the last."""

    plugin: str


@dataclass(frozen=True)
class Call:
    """Run :class:`~rwq.host.api.PluginHost` method ``method`` (one of ``CALLS``)."""

    id: int
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    """The screen closes: stop the plugins and exit."""


# -- from the plugin host process ------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The plugins are loaded; calls are answered from now on."""


@dataclass(frozen=True)
class Failed:
    """The host could not start (a bad policy file, Redis unreachable)."""

    error: ErrorInfo


@dataclass(frozen=True)
class Returned:
    id: int
    value: Any


@dataclass(frozen=True)
class Raised:
    id: int
    error: ErrorInfo


@dataclass(frozen=True)
class Frames:
    """Finished panel frames, encoded by :class:`~rwq.host.frame_wire.FrameEncoder`."""

    frames: list[Any]


@dataclass(frozen=True)
class Notification:
    """A plugin's notification for a toast."""

    plugin: str
    message: str
    level: str


Message = (
    Init | View | Forget | Call | Stop | Ready | Failed | Returned | Raised | Frames | Notification
)
