"""Where plugins are found, installed and unpacked for one settings object.

Kept free of heavy imports: ``rwq plugin`` commands and the lifecycle manager both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rwq.config import Settings
from rwq.errors import RwqError


@dataclass(frozen=True)
class PluginPaths:
    """Where plugins are found, installed and unpacked for one settings object."""

    settings: Settings
    with_installed: bool = True
    """Search the user's installed plugins too (``rwq plugin dev`` leaves them out unless
    asked)."""

    @property
    def installed(self) -> Path:
        return self.settings.state_dir / "plugins" / "installed"

    @property
    def extracted(self) -> Path:
        return self.settings.state_dir / "plugins" / "extracted"

    @property
    def search(self) -> list[Path]:
        """The directories discovery reads: ``plugin_dirs``, then the installed plugins. A
        directory that holds a manifest is one plugin, not a directory of plugins."""
        extra = [Path(p).expanduser().absolute() for p in self.settings.plugin_dirs.split(":") if p]
        return [*dict.fromkeys([*extra, *([self.installed] if self.with_installed else [])])]


def with_plugin_dirs(settings: Settings, dirs: list[Path] | None, option: str) -> Settings:
    """``settings`` searching ``dirs`` (a command's ``--plugins-dir``) too.

    Raises:
        PluginDirError: one of ``dirs`` is not a directory.
    """
    if not dirs:
        return settings
    for directory in dirs:
        if not directory.is_dir():
            raise PluginDirError(f"{option}: {directory} is not a directory")
    given = [str(d.expanduser().resolve()) for d in dirs]
    kept = [p for p in settings.plugin_dirs.split(":") if p]
    return settings.replace(plugin_dirs=":".join(dict.fromkeys([*given, *kept])))


class PluginDirError(RwqError):
    """A plugin directory given on the command line does not exist."""
