"""Compiled WASM modules, cached in memory and on disk, keyed by what they were compiled
from."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import stat
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import wasmtime

log = logging.getLogger(__name__)

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
_MAGIC = b"rwq-cwasm-1\n"
_DIGEST = 32


@dataclass
class CacheStats:
    """What the cache did since it was made."""

    compiled: int = 0
    """Modules compiled (cache misses)."""
    disk_hits: int = 0
    memory_hits: int = 0
    refused: int = 0
    """Cache files not used: corrupt, incompatible, or in a directory others could write."""


class ModuleCache:
    """Compiled modules of one engine.

    A module's key is the sha256 of its bytes, the wasmtime version and the engine's
    configuration, so a changed module, wasmtime or engine setting never gets a stale entry.
    A ``.cwasm`` file is native code that wasmtime's deserialisation trusts completely, so a
    file is used only when it and its directory are ours and writable by no one else (the
    directory is created ``0700``); files are written atomically and start with a digest of
    their payload, so a torn or corrupted file is compiled again rather than loaded.

    Args:
        engine: the engine modules are compiled for.
        engine_key: a description of the engine's configuration (part of every key).
        directory: where ``.cwasm`` files go (``<directory>/<key>.cwasm``); None for memory
            only.
        memory_slots: modules kept in memory, least recently used dropped first.
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        engine_key: str,
        directory: Path | None,
        memory_slots: int = 64,
    ) -> None:
        self.engine = engine
        self.engine_key = engine_key
        self.directory = directory
        self.memory_slots = memory_slots
        self.stats = CacheStats()
        self._memory: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self._warned = False

    def key(self, wasm: bytes) -> str:
        """The cache key of ``wasm``: content, wasmtime version and engine configuration."""
        h = hashlib.sha256()
        h.update(f"rwq-wasm\0{WASMTIME_VERSION}\0{self.engine_key}\0".encode())
        h.update(wasm)
        return h.hexdigest()

    def module(self, wasm: bytes) -> tuple[wasmtime.Module, str]:
        """The compiled module for ``wasm`` and where it came from (``memory``, ``disk`` or
        ``compiled``).

        Raises:
            wasmtime.WasmtimeError: ``wasm`` is not a valid module for this engine.
        """
        key = self.key(wasm)
        cached = self._memory.get(key)
        if cached is not None:
            self._memory.move_to_end(key)
            self.stats.memory_hits += 1
            return cached, "memory"
        module = self._read(key)
        source = "disk"
        if module is None:
            module = wasmtime.Module(self.engine, wasm)
            self.stats.compiled += 1
            self._write(key, module)
            source = "compiled"
        else:
            self.stats.disk_hits += 1
        self._memory[key] = module
        while len(self._memory) > self.memory_slots:
            self._memory.popitem(last=False)
        return module, source

    def forget_memory(self) -> None:
        """Drop the in-memory modules (the disk cache stays)."""
        self._memory.clear()

    # -- disk ---------------------------------------------------------------------------

    def _trusted_dir(self, create: bool) -> Path | None:
        if self.directory is None:
            return None
        path = self.directory
        try:
            if create:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode) or not _ours(st):
            if not self._warned:
                log.warning(
                    "not using the WASM module cache %s: it must be a directory owned by this "
                    "user and writable by no one else",
                    path,
                )
                self._warned = True
            return None
        return path

    def _read(self, key: str) -> wasmtime.Module | None:
        directory = self._trusted_dir(create=False)
        if directory is None:
            return None
        path = directory / f"{key}.cwasm"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not _ours(st):
                self.stats.refused += 1
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                blob = f.read()
        finally:
            os.close(fd)
        head = len(_MAGIC)
        payload = blob[head + _DIGEST :]
        if blob[:head] != _MAGIC or blob[head : head + _DIGEST] != hashlib.sha256(payload).digest():
            self.stats.refused += 1
            return None
        try:
            # Safe only because the bytes are ours: see the class docstring.
            return wasmtime.Module.deserialize(self.engine, payload)
        except wasmtime.WasmtimeError:
            self.stats.refused += 1
            return None

    def _write(self, key: str, module: wasmtime.Module) -> None:
        directory = self._trusted_dir(create=True)
        if directory is None:
            return
        payload = bytes(module.serialize())
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".cwasm", dir=directory)
        except OSError as exc:
            log.warning("cannot write to the WASM module cache %s: %s", directory, exc)
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, directory / f"{key}.cwasm")
        except OSError as exc:
            log.warning("cannot write to the WASM module cache %s: %s", directory, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
