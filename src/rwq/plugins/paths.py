"""Where plugins are found, installed and unpacked for one settings object.

Kept free of heavy imports: ``rwq plugin`` commands and the lifecycle manager both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rwq.config import Settings


@dataclass(frozen=True)
class PluginPaths:
    """Where plugins are found, installed and unpacked for one settings object."""

    settings: Settings

    @property
    def installed(self) -> Path:
        return self.settings.state_dir / "plugins" / "installed"

    @property
    def extracted(self) -> Path:
        return self.settings.state_dir / "plugins" / "extracted"

    @property
    def search(self) -> list[Path]:
        extra = [Path(p) for p in self.settings.plugin_dirs.split(":") if p]
        return [*extra, self.installed]
