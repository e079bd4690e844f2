"""Serving the app with uvicorn: in the foreground for ``rwq web``, or on a thread for tests
and ``rwq bench web`` (port 0 picks a free port; :attr:`WebServer.url` says which)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.queue.broker import Broker
from rwq.web.app import asgi, create_app
from rwq.web.context import WebContext

if TYPE_CHECKING:
    from rwq.host.local import LocalPluginHost

__all__ = ["WebServer", "WebServerError", "is_loopback"]

START_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 10
"""Seconds a stopping server waits for the requests in progress before cancelling them."""


class WebServerError(RwqError):
    """The web server could not start (bad TLS files, the port taken...)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Uvicorn(uvicorn.Server):
    """uvicorn, ending the live streams first when it shuts down: it waits for every open
    connection to end, and a stream would not end by itself."""

    def __init__(self, config: uvicorn.Config, context: WebContext) -> None:
        super().__init__(config)
        self.context = context

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.context.live is not None:
            self.context.live.end_streams()
        await super().shutdown(sockets)


class WebServer:
    """``rwq web`` on ``host``:``port`` over ``broker``.

    Args:
        tls_cert: a PEM certificate (with ``tls_key``): serve HTTPS.
        plugin_host: the one plugin host of the server, not started yet: the server starts
            it when it starts serving and stops it when it stops (None: no plugins).
    """

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        log_level: str = "warning",
        plugin_host: LocalPluginHost | None = None,
        access_log: bool = False,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise WebServerError("--tls-cert and --tls-key go together")
        for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
            if path is not None and not path.is_file():
                raise WebServerError(f"{option}: no file {str(path)!r}")
        self.context = WebContext.from_settings(settings, broker, tls=tls_cert is not None)
        self.context.host = plugin_host
        self.app = create_app(self.context)
        self.host = host
        self.tls = tls_cert is not None
        config = uvicorn.Config(
            asgi(self.app),
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,
        )
        if access_log:  # a line per request, whatever the level of the server's other logs
            logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        self._server = _Uvicorn(config, self.context)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port bound (known once started)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise WebServerError("the server is not listening")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def run(self, on_listening: Callable[[str], None] | None = None) -> None:
        """Serve in the foreground until interrupted (Ctrl-C, SIGTERM); ``on_listening`` hears
        the URL once the server listens (its real port when given 0)."""
        asyncio.run(self._serve(on_listening))
        if not self._server.started:
            raise WebServerError(f"could not listen on {self.host} (see the message above)")

    async def _guarded(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's answer to a failed bind, logged
            await self._server.serve()

    async def _serve(self, on_listening: Callable[[str], None] | None) -> None:
        serving = asyncio.create_task(self._guarded())
        while not self._server.started and not serving.done():
            await asyncio.sleep(0.01)
        if self._server.started and on_listening is not None:
            on_listening(self.url)
        await serving

    def start(self) -> WebServer:
        """Serve on a thread; returns once listening."""
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._guarded(),), name="rwq-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise WebServerError(f"the web server did not start on {self.host}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (after the requests in progress) and close the audit log."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT)
            self._thread = None
        self.context.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
