"""A plugin's configuration: asked of the running plugin when it answers ``get_config``, else
the manifest's defaults with the user's stored values on top; changed through the plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rwq.plugins.engine.calls import Calls
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.records import PluginTable
from rwq.plugins.package.user_config import (
    ConfigStore,
    PluginConfigError,
    check_config,
    effective_config,
)
from rwq.plugins.runtimes.base import Hook, PluginFault


class Configuration:
    """Reads and changes the plugins' configuration.

    Args:
        table: the plugin records.
        calls: calls into the plugins.
        configs: the user's stored configurations.
    """

    def __init__(self, table: PluginTable, calls: Calls, configs: ConfigStore) -> None:
        self._table = table
        self._calls = calls
        self._configs = configs

    def get(self, name: str) -> dict[str, Any]:
        """The configuration of ``name``: its ``get_config`` answer when running and
        exported, else the manifest's defaults with the user's stored values on top."""
        rec = self._table.get(name)
        with rec.lock:
            if rec.state is PluginState.ACTIVE and Hook.GET_CONFIG in rec.exports:
                try:
                    result = self._calls.invoke(rec, Hook.GET_CONFIG, None, check=_object)
                except PluginFault:
                    pass
                else:
                    return dict(result)
        manifest = rec.manifest
        defaults = manifest.config if manifest is not None else {}
        return effective_config(defaults, self._configs.get(name))

    def set(self, name: str, config: Mapping[str, Any]) -> None:
        """Replace the user's configuration of ``name``: a running plugin gets the effective
        configuration through ``set_config`` first (and may refuse it); then it is stored,
        so the next ``initialize`` gets it too.

        Raises:
            PluginConfigError: not a JSON object, too large, or refused by the plugin.
        """
        rec = self._table.get(name)
        user = check_config(name, config)
        manifest = rec.manifest
        effective = effective_config(manifest.config if manifest else {}, user)
        with rec.lock:
            if rec.state is PluginState.ACTIVE and Hook.SET_CONFIG in rec.exports:
                try:
                    result = self._calls.invoke(rec, Hook.SET_CONFIG, effective)
                except PluginFault as fault:
                    raise PluginConfigError(name, f"the plugin faulted: {fault.reason}") from None
                if isinstance(result, dict) and "error" in result:
                    raise PluginConfigError(name, f"refused: {str(result['error'])[:500]}")
            self._configs.set(name, user)
        self._table.mark_dirty(rec)


def _object(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    raise ValueError(f"expected an object, got {type(result).__name__}")
