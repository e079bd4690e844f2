"""From settings to a connected ``redis.asyncio`` client: :func:`rwq.connection.connect` for
asyncio code, with the same URLs (``redis://``, ``rediss://``, ``unix://``, the ``+cluster``
forms as a :class:`redis.asyncio.cluster.RedisCluster`, none for the embedded Valkey) and the
same errors."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisClusterException

from rwq.config import Settings
from rwq.connection import (
    CONNECT_TIMEOUT,
    HINT,
    RETRY_BACKOFF_CAP,
    RedisUrl,
    _fail,
    _reason,
    parse_url,
    server_url,
)
from rwq.errors import ConnectionFailed

__all__ = ["AsyncRedisClient", "connect", "is_cluster"]

AsyncRedisClient: TypeAlias = redis.asyncio.Redis | RedisCluster
MAX_CONNECTIONS = 100
"""Connections an asyncio client opens at most (redis-py's default); more tasks wait."""
POOL_WAIT = 10.0
"""Seconds a task waits for a free connection before the call fails."""


async def connect(settings: Settings, *, decode_responses: bool = True) -> AsyncRedisClient:
    """An asyncio client of the server ``settings`` name, checked with a PING.

    With ``settings.redis_url`` unset, the embedded Valkey of ``settings.state_dir`` is
    started if it is not running yet (in a thread: starting it blocks).

    Raises:
        ConnectionFailed: the URL is unusable or the server does not answer within ~2 s.
    """
    if settings.redis_url is None:
        url = await asyncio.to_thread(server_url, settings)
    else:
        url = settings.redis_url
    target = parse_url(url)
    try:
        if target.cluster:
            return await _connect_cluster(target, decode_responses, settings)
        await _probe(target)
        # Many tasks at once (a web server's streams opening together) wait for a connection
        # of the pool instead of failing with "Too many connections".
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            target.url,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT,
            decode_responses=decode_responses,
            **_options(settings),
        )
        client: redis.asyncio.Redis = redis.asyncio.Redis.from_pool(pool)
        return client
    except (ValueError, TypeError) as exc:  # a query parameter redis-py cannot read
        raise _fail(url, f"bad parameter: {exc}") from None


async def _probe(target: RedisUrl) -> None:
    # The real client retries failed connections for seconds; the check must answer at once.
    probe = redis.asyncio.Redis.from_url(
        target.url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await probe.ping()
    except (redis.RedisError, OSError) as exc:
        raise ConnectionFailed(
            f"cannot reach Redis at {target.redacted}: {_reason(exc)}; {HINT}"
        ) from exc
    finally:
        await probe.aclose()


def _options(settings: Settings) -> dict[str, Any]:
    """The timeouts and retries of :func:`rwq.connection.client_options`, for asyncio."""
    return {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "retry": Retry(
            ExponentialWithJitterBackoff(cap=RETRY_BACKOFF_CAP, base=0.05),
            settings.redis_retries,
        ),
    }


async def _connect_cluster(
    target: RedisUrl, decode_responses: bool, settings: Settings
) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in target.nodes]
    client = RedisCluster(
        startup_nodes=nodes,
        ssl=target.ssl,
        username=target.username,
        password=target.password,
        decode_responses=decode_responses,
        **_options(settings),
    )
    try:
        await client.initialize()  # asks the startup nodes for the slot map: the PING
        await client.ping()
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        await client.aclose()
        raise ConnectionFailed(
            f"cannot reach Redis cluster at {target.redacted}: {_reason(exc)}; {HINT}"
        ) from exc
    return client


def is_cluster(client: AsyncRedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster (keys must then share hash tags)."""
    return isinstance(client, RedisCluster)
