"""The one place a plugin host is put together, for the TUI's plugin host process, ``rwq plugin
run``, a headless ``rwq demo``, ``rwq plugin check`` and the tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.host.local import LocalPluginHost
from rwq.host.logs import PluginLogs
from rwq.plugins.contract.ui import validate_elements
from rwq.plugins.engine.lifecycle import FaultPolicy
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.eventbus.bus import DEFAULT_INBOX
from rwq.plugins.ops.control import ControlServer
from rwq.plugins.ops.reloader import HotReloader
from rwq.plugins.runtimes.base import PluginRuntime
from rwq.queue.broker import Broker
from rwq.queue.reaper import ReaperThread

Runtimes = Callable[[], dict[str, PluginRuntime]]
"""Makes the sandboxes, by manifest ``runtime``; the host closes them when it stops."""


def cache_dir() -> Path:
    """Where compiled WASM modules are cached (``$XDG_CACHE_HOME/rwq``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rwq"


def sandboxes() -> dict[str, PluginRuntime]:
    """The runtimes, by manifest ``runtime``: wasmtime, and Starlark in forked sandboxes."""
    from rwq.plugins.runtimes.starlark import StarlarkRuntime
    from rwq.plugins.runtimes.wasm import WasmRuntime

    return {"wasm": WasmRuntime(cache_dir=cache_dir()), "starlark": StarlarkRuntime()}


@dataclass(frozen=True)
class HostOptions:
    """How a plugin host differs between its users."""

    policy_path: Path | None = None
    """A policy file applied to pending permission requests."""
    watch: bool = True
    """Hot-reload a plugin when its files change."""
    reloads: bool = True
    """Run the hot reloader (probation and rollback of every swap) and answer ``rwq plugin
    reload`` from other processes; off for a check, which swaps nothing."""
    feeds: bool = True
    """Follow the queue event streams and run the samplers (a check feeds its own events)."""
    runtimes: Runtimes = sandboxes
    fault_policy: FaultPolicy | None = None
    max_batch: int = DEFAULT_INBOX
    """Most events handed to one ``on_event`` call."""
    with_installed: bool = True
    """Host the user's installed plugins besides ``plugin_dirs``."""
    granted_as_asked: frozenset[str] = frozenset()
    """Plugins granted what each version's manifest asks for, as asked, without a dialog
    (``rwq plugin dev``'s plugin; never another)."""
    screen: bool = False
    """A screen shows the plugins' log lines and notifications (kept in the host's
    :class:`~rwq.host.logs.PluginLogs`); without one they go to the process's log."""


def build_host(
    settings: Settings, client: Any, options: HostOptions = HostOptions()
) -> LocalPluginHost:
    """A plugin host for the plugins of ``settings`` on ``client``, not started yet. Every
    render is checked against the UI element schema, as the screens would."""
    logs = PluginLogs()
    shown: dict[str, Any] = {"on_notify": logs.notify, "on_log": logs.add} if options.screen else {}
    manager = PluginManager(
        settings,
        options.runtimes(),
        client,
        policy_path=options.policy_path,
        feeds=options.feeds,
        fault_policy=options.fault_policy,
        max_batch=options.max_batch,
        element_validator=validate_elements,
        with_installed=options.with_installed,
        granted_as_asked=options.granted_as_asked,
        **shown,
    )
    reloader = control = None
    if options.reloads:
        # Without watching the reloader still serves `rwq plugin reload` and puts every swap
        # on probation.
        reloader = HotReloader(manager, watch=options.watch)
        control = ControlServer(manager, reloader)
    reaper = ReaperThread(Broker(client, settings), f"plugin-host:{os.getpid()}")
    return LocalPluginHost(manager, reloader, control, logs, reaper)
