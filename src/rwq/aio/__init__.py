"""rwq from asyncio code: an async producer and an async Redis connection on ``redis.asyncio``.

Async *handlers* need nothing from here: give a worker an ``async def`` handler and it awaits
it on its own event loop (:mod:`rwq.queue.handler_coroutines`, ``docs/queue.md``).
"""

from __future__ import annotations

from rwq.aio.connection import AsyncRedisClient, connect
from rwq.aio.producer import AsyncProducer

__all__ = ["AsyncProducer", "AsyncRedisClient", "connect"]
