"""What every request of one ``rwq web`` process shares: settings, the queue's admin, the token
and session stores, the audit log and (when the server hosts plugins) the one plugin host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from rwq.aio.connection import AsyncRedisClient
from rwq.aio.connection import connect as aio_connect
from rwq.config import Settings
from rwq.plugins.trust.audit import AuditLog
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.web.sessions import SessionStore
from rwq.web.tokens import TokenStore

if TYPE_CHECKING:
    from rwq.host.local import LocalPluginHost
    from rwq.web.live import LiveFeed

__all__ = ["WebContext", "web_context"]


@dataclass
class WebContext:
    """The server's shared objects; one per process, handed to the routes by
    :func:`web_context`.

    Attributes:
        tls: whether the server speaks HTTPS (cookies are then ``Secure``).
        host: the one plugin host of the process, shared by every request (and later every
            browser tab), or None when the server hosts no plugins.
    """

    settings: Settings
    broker: Broker
    tokens: TokenStore
    sessions: SessionStore
    audit: AuditLog | None
    tls: bool = False
    host: LocalPluginHost | None = None
    aio: AsyncRedisClient | None = None
    """The asyncio client of the server's event loop (opened when the app starts)."""
    live: LiveFeed | None = None
    """The process's one live feed (statistics, plugin states, panels) for every stream."""

    @property
    def aio_client(self) -> AsyncRedisClient:
        if self.aio is None:
            raise RuntimeError("the app has not started: no asyncio Redis client yet")
        return self.aio

    async def open(self) -> None:
        """Start what the server's event loop needs: the asyncio Redis client and the
        plugin host."""
        from rwq.web.live import LiveFeed  # the feed imports the panel renderer

        self.aio = await aio_connect(self.settings)
        if self.host is not None:
            self.host.start()
        self.live = LiveFeed(self)
        await self.live.start()

    async def aclose(self) -> None:
        """Close what :meth:`open` opened and :meth:`close` the rest."""
        if self.live is not None:
            await self.live.stop()
            self.live = None
        if self.aio is not None:
            await self.aio.aclose()
            self.aio = None
        self.close()

    @property
    def admin(self) -> Admin:
        return Admin(self.broker)

    @classmethod
    def from_settings(cls, settings: Settings, broker: Broker, *, tls: bool = False) -> WebContext:
        return cls(
            settings=settings,
            broker=broker,
            tokens=TokenStore(broker.client, broker.keys),
            sessions=SessionStore(broker.client, broker.keys),
            audit=AuditLog.from_settings(settings),
            tls=tls,
        )

    def close(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None
        if self.audit is not None:
            self.audit.close()


async def web_context(request: Request) -> WebContext:
    """The process's :class:`WebContext` (a FastAPI dependency; async as it does no I/O, so
    it costs no hop to the thread pool)."""
    context = request.app.state.rwq
    assert isinstance(context, WebContext)
    return context
