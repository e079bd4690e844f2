"""From settings to a connected Redis client: URL parsing, cluster URLs, the embedded server.

``redis://``, ``rediss://`` and ``unix://`` URLs are handed to redis-py; the cluster forms
``redis+cluster://host:port[,host:port...]`` and ``rediss+cluster://`` (TLS) become a
:class:`redis.cluster.RedisCluster`. No URL at all means the embedded Valkey.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from rwq.config import Settings
from rwq.errors import ConnectionFailed
from rwq.outage import describe
from rwq.valkey.embedded import EmbeddedServer, ServerError

__all__ = [
    "RedisClient",
    "RedisUrl",
    "client_options",
    "connect",
    "is_cluster",
    "parse_url",
    "server_url",
]

RedisClient: TypeAlias = redis.Redis | RedisCluster

PLAIN_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
CONNECT_TIMEOUT = 2.0
"""Seconds the first PING of :func:`connect` may take at most (less when the settings'
timeouts are shorter)."""
RETRY_BACKOFF_CAP = 0.25
"""Longest wait, in seconds, between the client's own tries of one command."""
DEFAULT_PORT = 6379
HINT = "check --redis-url / RWQ_REDIS_URL"


@dataclass(frozen=True)
class RedisUrl:
    """A validated server URL.

    Attributes:
        url: the URL as given, scheme lower-cased.
        cluster: a ``+cluster`` scheme.
        ssl: a ``rediss`` scheme.
        nodes: the ``(host, port)`` startup nodes of a cluster URL; empty otherwise.
        username: from the URL's user info (cluster URLs; redis-py reads plain ones itself).
        password: likewise.
    """

    url: str
    cluster: bool
    ssl: bool
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None

    @property
    def redacted(self) -> str:
        """The URL with its password replaced by ``***``, for messages and logs."""
        return redact(self.url)


def redact(url: str) -> str:
    """``url`` with any password (in its user info, or a ``password=`` query parameter)
    replaced by ``***``."""
    url = re.sub(r"(://[^:@/,]*:)[^@/]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def _fail(url: str, reason: str) -> ConnectionFailed:
    return ConnectionFailed(f"Redis URL {redact(url)!r}: {reason}; {HINT}")


def parse_url(url: str) -> RedisUrl:
    """Validate ``url`` and say how to connect to it.

    Raises:
        ConnectionFailed: an unsupported scheme or a malformed URL.
    """
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise _fail(url, "not a URL (expected e.g. redis://localhost:6379/0)")
    normalized = f"{scheme}://{rest}"
    if scheme in CLUSTER_SCHEMES:
        return _parse_cluster(normalized, rest, ssl=scheme.startswith("rediss"))
    if scheme not in PLAIN_SCHEMES:
        known = ", ".join(f"{s}://" for s in (*PLAIN_SCHEMES, *CLUSTER_SCHEMES))
        raise _fail(url, f"unsupported scheme {scheme!r} (use {known})")
    try:
        parts = urlsplit(normalized)
        port = parts.port  # raises ValueError when not a number in 0-65535
    except ValueError as exc:
        raise _fail(url, f"malformed: {exc}") from None
    if scheme == "unix":
        if not parts.path.startswith("/"):
            raise _fail(url, "needs an absolute socket path, e.g. unix:///run/valkey.sock")
    else:
        if port == 0:
            raise _fail(url, "port 0 is not a server port")
        if parts.path.strip("/") and not parts.path.strip("/").isdigit():
            raise _fail(url, f"database {parts.path.strip('/')!r} is not a number")
    return RedisUrl(url=normalized, cluster=False, ssl=scheme == "rediss")


def _parse_cluster(url: str, rest: str, *, ssl: bool) -> RedisUrl:
    location, _, query = rest.partition("?")
    netloc, _, path = location.partition("/")
    if query or path.strip("/") not in ("", "0"):
        raise _fail(url, "cluster URLs take no path or query (a cluster has only database 0)")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_parse_node(url, node) for node in hosts.split(","))
    return RedisUrl(
        url=url, cluster=True, ssl=ssl, nodes=nodes, username=username, password=password
    )


def _parse_node(url: str, node: str) -> tuple[str, int]:
    node = node.strip()
    if node.startswith("["):  # [ipv6]:port
        host, bracket, port_text = node[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise _fail(url, f"malformed node {node!r}")
        port_text = port_text[1:]
    else:
        host, colon, port_text = node.rpartition(":")
        if not colon:
            host, port_text = node, ""
    if not host or any(c in host for c in " /@?#[]"):
        raise _fail(url, f"malformed node {node!r} (expected host:port)")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _fail(url, f"node {node!r}: port must be a number in 1-65535")
    return host, int(port_text)


def connect(settings: Settings, *, decode_responses: bool = True) -> RedisClient:
    """A client of the server ``settings`` name, checked with a PING.

    With ``settings.redis_url`` unset, the embedded Valkey of ``settings.state_dir`` is
    started if it is not running yet.

    Raises:
        ConnectionFailed: the URL is unusable or the server does not answer within ~2 s.
    """
    url = server_url(settings)
    target = parse_url(url)
    try:
        if target.cluster:
            return _connect_cluster(target, decode_responses, settings)
        _probe(target, settings)
        return redis.Redis.from_url(
            target.url, decode_responses=decode_responses, **client_options(settings)
        )
    except (ValueError, TypeError) as exc:  # a query parameter redis-py cannot read
        raise _fail(url, f"bad parameter: {exc}") from None


def client_options(settings: Settings) -> dict[str, object]:
    """The timeouts and retries of every client rwq makes (``socket_timeout``,
    ``socket_connect_timeout``, ``redis_retries``): a command fails within a few seconds
    when Redis is away, and long-running processes retry on their own, with backoff."""
    return {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "retry": Retry(
            ExponentialWithJitterBackoff(cap=RETRY_BACKOFF_CAP, base=0.05),
            settings.redis_retries,
        ),
    }


def server_url(settings: Settings) -> str:
    """The URL of the server ``settings`` name: ``redis_url``, else the embedded Valkey's,
    started when it is not running yet.

    Raises:
        ConnectionFailed: the embedded Valkey cannot start.
    """
    if settings.redis_url is not None:
        return settings.redis_url
    try:
        return EmbeddedServer(settings.state_dir, settings.persistence, settings.fsync).ensure()
    except ServerError as exc:
        raise ConnectionFailed(f"embedded Valkey did not start: {exc}") from exc
    except (OSError, ValueError, RuntimeError) as exc:  # an unusable state_dir
        raise ConnectionFailed(
            f"state_dir {str(settings.state_dir)[:200]!r}: cannot hold the embedded Valkey: {exc}"
        ) from None


def _probe(target: RedisUrl, settings: Settings) -> None:
    # The real client retries failed connections; the check must answer at once.
    probe = redis.Redis.from_url(
        target.url,
        socket_connect_timeout=min(CONNECT_TIMEOUT, settings.socket_connect_timeout),
        socket_timeout=min(CONNECT_TIMEOUT, settings.socket_timeout),
        retry=Retry(NoBackoff(), 0),
    )
    try:
        probe.ping()
    except (redis.RedisError, OSError) as exc:
        raise ConnectionFailed(
            f"cannot reach Redis at {target.redacted}: {_reason(exc)}; {HINT}"
        ) from exc
    finally:
        probe.close()


def _connect_cluster(target: RedisUrl, decode_responses: bool, settings: Settings) -> RedisCluster:
    nodes = [ClusterNode(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call]
    try:
        # RedisCluster asks the startup nodes for the slot map here, so this is the PING.
        client = RedisCluster(
            startup_nodes=nodes,
            ssl=target.ssl,
            username=target.username,
            password=target.password,
            decode_responses=decode_responses,
            # A node may be down while the others serve their slots (a cluster configured
            # with cluster-require-full-coverage no): the client must still start.
            require_full_coverage=False,
            **client_options(settings),  # type: ignore[arg-type]
        )
        client.ping()
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        raise ConnectionFailed(
            f"cannot reach Redis cluster at {target.redacted}: {_reason(exc)}; {HINT}"
        ) from exc
    return client


def _reason(exc: BaseException) -> str:
    return describe(exc)


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster (keys must then share hash tags)."""
    return isinstance(client, RedisCluster)
