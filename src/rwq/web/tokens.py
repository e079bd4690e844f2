"""HTTP API tokens: named, scoped by the plugins' permission catalog and queue globs, stored
hashed in Redis so every ``rwq web`` process on the same server sees the same tokens.

A token reads ``rwq_<name>.<secret>``: the secret is 256 random bits (URL-safe base64); Redis
holds only its SHA-256, compared in constant time. A KDF would add nothing: the secret is not
a password a person chose, so it cannot be guessed from a hash faster than by brute force over
2^256. The name in the token lets a request find its record in one read and a leaked token be
recognised (and revoked) by name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from rwq.aio.connection import AsyncRedisClient
from rwq.connection import RedisClient
from rwq.errors import RwqError
from rwq.plugins.contract.permissions import UnknownPermission, expand
from rwq.plugins.trust.scope import Scope
from rwq.queue.keys import Keys

__all__ = [
    "TOKEN_NAME",
    "ApiToken",
    "InvalidToken",
    "TokenArgumentError",
    "TokenExists",
    "TokenStore",
    "UnknownToken",
    "hash_secret",
]

TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
QUEUE_GLOB = re.compile(r"^[A-Za-z0-9._:*?-]{1,128}\Z")
"""A queue glob of a token's scope: the characters of queue names plus ``*`` and ``?``, as in
a plugin's queue scope."""
TOKEN_PREFIX = "rwq_"
SECRET_BYTES = 32
LAST_USED_EVERY = 60.0
"""Seconds between two writes of a token's last use by one process (a write per request
would double the cost of a read)."""


class TokenError(RwqError):
    """A token operation was refused."""


class TokenArgumentError(TokenError):
    """A token's name, permission, queue glob or expiry is malformed; names the argument."""

    def __init__(self, argument: str, reason: str) -> None:
        self.argument = argument
        self.reason = reason
        super().__init__(f"{argument}: {reason}")


class TokenExists(TokenError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a token named {name!r} exists already (revoke it first)")


class UnknownToken(TokenError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no token named {name!r}")


class InvalidToken(TokenError):
    """A presented token is malformed, unknown, revoked or expired; ``name`` is the name it
    claimed, when it had one (for the audit log)."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        self.reason = reason
        self.name = name
        super().__init__(reason)


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a token's secret part, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiToken:
    """One token's record (never its secret).

    Attributes:
        permissions: as given: catalog names and levels (``operator`` grants the level's
            non-sensitive permissions, as for plugins).
        queues: the queue globs queue-scoped permissions are limited to (``*``: every queue).
        secret_sha256: the hex SHA-256 of the secret.
    """

    name: str
    permissions: tuple[str, ...]
    queues: tuple[str, ...]
    created_at: float
    expires_at: float | None
    secret_sha256: str
    last_used_at: float | None = None

    @cached_property
    def granted(self) -> frozenset[str]:
        """The catalog permissions the token holds (levels expanded)."""
        return expand(self.permissions)

    @cached_property
    def scope(self) -> Scope:
        """Where its queue-scoped permissions apply."""
        return Scope(queues=self.queues)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def to_dict(self) -> dict[str, Any]:
        """What ``rwq token list --json`` and the API show: everything but the hash."""
        return {
            "name": self.name,
            "permissions": list(self.permissions),
            "queues": list(self.queues),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
        }

    def _record(self) -> str:
        return json.dumps(
            {
                "permissions": list(self.permissions),
                "queues": list(self.queues),
                "created_at": self.created_at,
                "expires_at": self.expires_at,
                "secret_sha256": self.secret_sha256,
            }
        )

    @classmethod
    def _from_record(cls, name: str, raw: str, last_used: str | None) -> ApiToken:
        data = json.loads(raw)
        return cls(
            name=name,
            permissions=tuple(data["permissions"]),
            queues=tuple(data["queues"]),
            created_at=float(data["created_at"]),
            expires_at=None if data["expires_at"] is None else float(data["expires_at"]),
            secret_sha256=str(data["secret_sha256"]),
            last_used_at=float(last_used) if last_used else None,
        )


def check_name(name: str, argument: str = "NAME") -> str:
    if not TOKEN_NAME.match(name):
        raise TokenArgumentError(
            argument, f"1-64 of letters, digits, '_' and '-', starting with a letter or digit; "
            f"got {name!r}"
        )  # fmt: skip
    return name


def check_permissions(names: Sequence[str], argument: str = "--permission") -> tuple[str, ...]:
    if not names:
        raise TokenArgumentError(argument, "give at least one permission (or a level)")
    for name in names:
        try:
            expand([name])
        except UnknownPermission as exc:
            raise TokenArgumentError(argument, str(exc)) from None
    return tuple(dict.fromkeys(names))


def check_queues(globs: Sequence[str], argument: str = "--queues") -> tuple[str, ...]:
    out: list[str] = []
    for text in globs:
        for glob in (g.strip() for g in text.split(",")):
            if not QUEUE_GLOB.match(glob):
                raise TokenArgumentError(
                    argument,
                    f"a queue name or glob of letters, digits, '.', '_', ':', '-', '*' and "
                    f"'?' (1-128), got {glob!r}",
                )
            out.append(glob)
    return tuple(dict.fromkeys(out)) or ("*",)


class TokenStore:
    """The tokens of one deployment (one key prefix), in Redis.

    Args:
        client: a client decoding responses to ``str``.
        keys: the deployment's key space.
        clock: the wall clock expiry is measured against.
    """

    def __init__(
        self, client: RedisClient, keys: Keys, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.keys = keys
        self.clock = clock
        self._touched: dict[str, float] = {}
        self._touched_lock = threading.Lock()

    def create(
        self,
        name: str,
        permissions: Sequence[str],
        queues: Sequence[str] = ("*",),
        expires_in: float | None = None,
    ) -> tuple[ApiToken, str]:
        """A new token and its secret text, shown once; raises :class:`TokenExists`."""
        check_name(name)
        perms = check_permissions(permissions)
        globs = check_queues(queues)
        if expires_in is not None and not expires_in > 0:
            raise TokenArgumentError("--expires", f"must be more than 0, got {expires_in:g}s")
        secret = secrets.token_urlsafe(SECRET_BYTES)
        now = self.clock()
        token = ApiToken(
            name=name,
            permissions=perms,
            queues=globs,
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            secret_sha256=hash_secret(secret),
        )
        if not self.client.hsetnx(self.keys.web_tokens, name, token._record()):
            raise TokenExists(name)
        self.client.hdel(self.keys.web_tokens_used, name)
        return token, f"{TOKEN_PREFIX}{name}.{secret}"

    def get(self, name: str) -> ApiToken | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.web_tokens, name)
        pipe.hget(self.keys.web_tokens_used, name)
        raw, used = pipe.execute()
        return ApiToken._from_record(name, raw, used) if raw else None

    async def get_async(self, client: AsyncRedisClient, name: str) -> ApiToken | None:
        """:meth:`get` on an asyncio client (a request's check costs no thread)."""
        pipe = client.pipeline(transaction=False)
        pipe.hget(self.keys.web_tokens, name)
        pipe.hget(self.keys.web_tokens_used, name)
        raw, used = await pipe.execute()
        return ApiToken._from_record(name, raw, used) if raw else None

    def list(self) -> list[ApiToken]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.web_tokens)
        pipe.hgetall(self.keys.web_tokens_used)
        records, used = pipe.execute()
        return [
            ApiToken._from_record(name, raw, used.get(name))
            for name, raw in sorted(records.items())
        ]

    def revoke(self, name: str) -> None:
        """Delete the token; its sessions end at their next request. Raises
        :class:`UnknownToken`."""
        if not self.client.hdel(self.keys.web_tokens, name):
            raise UnknownToken(name)
        self.client.hdel(self.keys.web_tokens_used, name)

    def authenticate(self, presented: str) -> ApiToken:
        """The token ``presented`` is, if it is current; raises :class:`InvalidToken`."""
        name, secret = parse(presented)
        token = self.verify(self.get(name), name, secret)
        self.touch(name)
        return token

    async def authenticate_async(self, client: AsyncRedisClient, presented: str) -> ApiToken:
        """:meth:`authenticate` on an asyncio client."""
        name, secret = parse(presented)
        token = self.verify(await self.get_async(client, name), name, secret)
        if self.due(name):
            await client.hset(self.keys.web_tokens_used, name, f"{self.clock():.3f}")
        return token

    def verify(self, token: ApiToken | None, name: str, secret: str) -> ApiToken:
        """``token`` (the record of ``name``) if ``secret`` is its secret and it has not
        expired; raises :class:`InvalidToken`."""
        # Compared even when the name is unknown, so timing tells nothing about which is.
        stored = token.secret_sha256 if token else "0" * 64
        if not hmac.compare_digest(stored, hash_secret(secret)) or token is None:
            raise InvalidToken("unknown or revoked token", name)
        self.check_current(token)
        return token

    def check_current(self, token: ApiToken) -> None:
        """Raise :class:`InvalidToken` if ``token`` has expired."""
        if token.expired(self.clock()):
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(token.expires_at))
            raise InvalidToken(f"token {token.name!r} expired at {when}", token.name)

    def touch(self, name: str) -> None:
        """Record that ``name`` was used now (at most once a minute per process)."""
        if self.due(name):
            self.client.hset(self.keys.web_tokens_used, name, f"{self.clock():.3f}")

    def due(self, name: str) -> bool:
        """Whether this process should record a use of ``name`` now (and counts it done)."""
        now = self.clock()
        with self._touched_lock:
            if now - self._touched.get(name, 0.0) < LAST_USED_EVERY:
                return False
            self._touched[name] = now
        return True


def parse(presented: str) -> tuple[str, str]:
    """The name and secret of a presented token; raises :class:`InvalidToken`."""
    body = presented.strip()
    if not body.startswith(TOKEN_PREFIX):
        raise InvalidToken(f"not an rwq token (they start with {TOKEN_PREFIX!r})")
    name, dot, secret = body[len(TOKEN_PREFIX) :].rpartition(".")
    if not dot or not TOKEN_NAME.match(name) or not secret:
        raise InvalidToken("malformed token")
    return name, secret
