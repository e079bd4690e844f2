"""A plugin host without a screen: the real sandboxes, the plugin manager, its hot reloader and
the control channel `rwq plugin reload` talks to — what `rwq plugin run` and a headless
`rwq demo` run."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.plugins.control import ControlServer
from rwq.plugins.host_api import LogSink, Notify
from rwq.plugins.manager import PluginManager
from rwq.plugins.reloader import HotReloader
from rwq.plugins.runtimes.base import PluginRuntime


def cache_dir() -> Path:
    """Where compiled WASM modules are cached (``$XDG_CACHE_HOME/rwq``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rwq"


def sandboxes() -> dict[str, PluginRuntime]:
    """The runtimes, by manifest ``runtime``: wasmtime, and Starlark in forked sandboxes."""
    from rwq.plugins.runtimes.starlark import StarlarkRuntime
    from rwq.plugins.runtimes.wasm import WasmRuntime

    return {"wasm": WasmRuntime(cache_dir=cache_dir()), "starlark": StarlarkRuntime()}


class HeadlessHost:
    """The plugins of ``settings`` hosted in this process until :meth:`stop`."""

    def __init__(
        self,
        settings: Settings,
        client: Any,
        *,
        policy_path: Path | None = None,
        watch: bool = True,
        runtimes: Callable[[], dict[str, PluginRuntime]] = sandboxes,
        on_notify: Notify | None = None,
        on_log: LogSink | None = None,
        feeds: bool = True,
        element_validator: Callable[[Any], Any] | None = None,
    ) -> None:
        self.runtimes = runtimes()
        self.manager = PluginManager(
            settings, self.runtimes, client, policy_path=policy_path, feeds=feeds,
            element_validator=element_validator, on_notify=on_notify, on_log=on_log,
        )  # fmt: skip
        # Without watching the reloader still serves `rwq plugin reload` and puts every swap
        # on probation.
        self.reloader = HotReloader(self.manager, watch=watch)
        self.control = ControlServer(self.manager, self.reloader)

    def start(self) -> None:
        self.manager.start()
        self.reloader.start()
        self.control.start()

    def stop(self) -> None:
        self.control.stop()
        self.reloader.stop()
        self.manager.stop()  # closes the runtimes too

    def states(self) -> dict[str, str]:
        """Each plugin's state, by name."""
        return {name: self.manager.state(name).value for name in self.manager.plugins()}

    def __enter__(self) -> HeadlessHost:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
