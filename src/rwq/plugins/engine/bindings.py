"""What the host API sees of each plugin: the binding its calls are checked against, and its
storage under the manifest's quota."""

from __future__ import annotations

import threading
from typing import Any

from rwq.errors import RwqError
from rwq.plugins.engine.lifecycle import RUNNING
from rwq.plugins.engine.records import PluginTable
from rwq.plugins.host_api.service import PluginBinding
from rwq.plugins.host_api.slots import acting
from rwq.plugins.host_api.storage import PluginStorage
from rwq.plugins.package.manifest import PluginManifest
from rwq.queue.keys import Keys


class HostBindings:
    """The host API's ``bindings`` and ``storage`` lookups.

    Args:
        table: the plugin records.
        client: the Redis client the plugins' storage lives in.
        keys: the deployment's key space.
    """

    def __init__(self, table: PluginTable, client: Any, keys: Keys) -> None:
        self._table = table
        self._client = client
        self._keys = keys
        self._storages: dict[str, PluginStorage] = {}
        self._lock = threading.Lock()

    def binding(self, name: str) -> PluginBinding | None:
        """The binding of the instance of ``name`` making the host call in progress, else of
        its live instance; None when it runs no instance (its calls are refused)."""
        slot = acting(name)
        if slot is not None:
            return slot.binding if slot.live else None
        rec = self._table.find(name)
        if rec is None or rec.state not in RUNNING:
            return None
        slot = rec.slot
        return slot.binding if slot is not None and slot.live else None

    def storage(self, name: str) -> PluginStorage:
        """The store of ``name``.

        Raises:
            RwqError: the plugin was never loaded here.
        """
        storage = self._storages.get(name)
        if storage is None:
            raise RwqError(f"plugin {name!r} has no storage here (not loaded)")
        return storage

    def set_quota(self, name: str, manifest: PluginManifest) -> None:
        """Give ``name`` a store with the quota of ``manifest`` (kept if it has that one)."""
        r = manifest.resources
        with self._lock:
            storage = self._storages.get(name)
            if (
                storage is None
                or storage.max_keys != r.max_storage_keys
                or storage.max_bytes != r.max_storage
            ):
                self._storages[name] = PluginStorage(
                    self._client,
                    self._keys,
                    name,
                    max_keys=r.max_storage_keys,
                    max_bytes=r.max_storage,
                )
