"""Start the TUI: connect, build the plugin host, run the app, clean up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rwq.config import Settings
from rwq.connection import connect, redact
from rwq.host.remote import RemotePluginHost
from rwq.queue.broker import Broker
from rwq.queue.reaper import ReaperThread
from rwq.tui.app import RwqApp
from rwq.tui.bench_form import QueueBench
from rwq.tui.dev import DevSession
from rwq.valkey.embedded import EmbeddedServer


def address(settings: Settings) -> str:
    """What the header shows as the server's address."""
    if settings.redis_url is None:
        return f"embedded valkey ({EmbeddedServer(settings.state_dir).socket_path})"
    return redact(settings.redis_url)


def launch(
    settings: Settings,
    *,
    plugins: bool = True,
    policy: Path | None = None,
    watch: bool = True,
    client: Any = None,
    quit_after: float | None = None,
    queue_bench: QueueBench | None = None,
    dev: DevSession | None = None,
    with_installed: bool = True,
) -> None:
    """Run the TUI until the user quits (or ``quit_after`` seconds); the plugin host process
    is started before and stopped after it. With ``dev`` (``rwq plugin dev``) its plugin is
    in front and granted what it asks for; ``with_installed`` hosts the installed plugins."""
    own = client is None
    client = connect(settings) if own else client
    try:
        host = None
        if plugins:
            host = RemotePluginHost(
                settings, policy_path=policy, watch=watch, with_installed=with_installed,
                granted_as_asked=frozenset([dev.plugin] if dev is not None else []),
            )  # fmt: skip
        app = RwqApp(
            settings, client, host=host, address=address(settings), quit_after=quit_after,
            queue_bench=queue_bench, dev=dev,
        )  # fmt: skip
        # Without plugins there is no plugin host process to reap dead workers' jobs: the TUI
        # does.
        reaper = None
        if host is None:
            reaper = ReaperThread(Broker(client, settings), f"tui:{os.getpid()}")
        if host is not None:
            host.start()  # its own process: the UI process only paints
        if reaper is not None:
            reaper.start()
        try:
            app.run()
        finally:
            if host is not None:
                host.stop()
            if reaper is not None:
                reaper.stop()
    finally:
        if own:
            client.close()
