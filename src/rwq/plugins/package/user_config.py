"""The user's configuration of each plugin, kept in the state dir so it survives restarts,
reloads and updates: ``<state_dir>/plugins/config/<name>.json``, one JSON object per plugin,
replaced atomically. A plugin's ``initialize`` gets its manifest's ``config`` defaults with
this on top (:func:`effective_config`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rwq.atomic_file import write_atomically
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.queue.keys import check_plugin_name

MAX_CONFIG_BYTES = 64 * 1024
"""Largest configuration (bytes of its JSON) one plugin may be given."""


class PluginConfigError(RwqError):
    """A plugin's configuration was refused: not a JSON object, too large, rejected by the
    plugin, or the file could not be read or written."""

    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin = plugin
        self.reason = reason
        super().__init__(f"plugin {plugin!r} config: {reason}")


def config_dir(settings: Settings) -> Path:
    """Where the user's plugin configs live: ``<state_dir>/plugins/config``."""
    return settings.state_dir / "plugins" / "config"


def check_config(plugin: str, config: Any) -> dict[str, Any]:
    """``config`` as a JSON object, or :class:`PluginConfigError`."""
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise PluginConfigError(plugin, f"expected an object, got {type(config).__name__}")
    try:
        text = json.dumps(config, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise PluginConfigError(plugin, f"not a JSON object: {exc}") from None
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise PluginConfigError(plugin, f"larger than {MAX_CONFIG_BYTES} bytes of JSON")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def effective_config(defaults: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's defaults with the user's values on top (top-level keys replaced)."""
    return {**defaults, **user}


class ConfigStore:
    """Per-plugin user configuration files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_settings(cls, settings: Settings) -> ConfigStore:
        return cls(config_dir(settings))

    def _path(self, plugin: str) -> Path:
        return self.directory / f"{check_plugin_name(plugin)}.json"

    def get(self, plugin: str) -> dict[str, Any]:
        """The stored configuration of ``plugin`` (empty when none was set)."""
        path = self._path(plugin)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise PluginConfigError(plugin, f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise PluginConfigError(plugin, f"{path} does not hold a JSON object")
        return data

    def forget(self, plugin: str) -> None:
        """Delete the stored configuration of ``plugin`` (none stored is no error)."""
        path = self._path(plugin)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise PluginConfigError(plugin, f"cannot delete {path}: {exc}") from None

    def set(self, plugin: str, config: Mapping[str, Any]) -> None:
        """Replace the stored configuration of ``plugin``, atomically."""
        data = check_config(plugin, config)
        path = self._path(plugin)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))
        except OSError as exc:
            raise PluginConfigError(plugin, f"cannot write {path}: {exc}") from None
