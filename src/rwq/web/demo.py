"""``rwq demo --web``: the web dashboard over the demo workload, with the sample plugins, and
a token for the browser made for the run and revoked when it ends."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

from rwq.config import Settings
from rwq.host.local import LocalPluginHost
from rwq.plugins.contract.permissions import CATALOG
from rwq.queue.broker import Broker
from rwq.web.server import WebServer

__all__ = ["DEMO_TOKEN_TTL", "serve_demo"]

DEMO_TOKEN_TTL = 24 * 3600.0
"""Seconds the run's token lives at most (it is revoked when the run ends)."""


def serve_demo(
    settings: Settings,
    client: Any,
    seconds: float | None,
    *,
    port: int,
    host_plugins: Callable[[Settings, Any], LocalPluginHost],
    say: Callable[[str], None],
) -> None:
    """Serve the web UI on 127.0.0.1:``port`` until Ctrl-C (or for ``seconds``) with a token
    holding every permission of the catalog, told with ``say`` and revoked at the end."""
    server = WebServer(
        settings, Broker(client, settings), port=port, plugin_host=host_plugins(settings, client)
    )
    tokens = server.context.tokens
    name = f"demo-{secrets.token_hex(3)}"
    _, secret = tokens.create(name, sorted(CATALOG), ("*",), DEMO_TOKEN_TTL)

    def listening(url: str) -> None:
        say(f"rwq web: {url}/ (Ctrl-C to stop)")
        say(f"log in with this token (revoked when the demo ends): {secret}")

    try:
        if seconds is None:
            server.run(listening)
            return
        server.start()
        try:  # stopped on Ctrl-C too: it stops the plugin host and its sandboxes
            listening(server.url)
            threading.Event().wait(seconds)
        finally:
            server.stop()
    finally:
        tokens.revoke(name)
