"""Browser sessions: a token exchanged once for an HttpOnly, SameSite=Strict cookie, and a CSRF
token the page must send back on every unsafe request.

A session is kept in Redis (so any ``rwq web`` process behind a load balancer knows it) by the
SHA-256 of its id, holding the token's name and the hash of the token's secret: it lasts at
most :data:`SESSION_TTL`, never beyond the token's expiry, and ends as soon as the token is
revoked or replaced by a new one of the same name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from rwq.aio.connection import AsyncRedisClient
from rwq.connection import RedisClient
from rwq.queue.keys import Keys
from rwq.web.tokens import ApiToken

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "SESSION_TTL", "Session", "SessionStore"]

SESSION_COOKIE = "rwq_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = 12 * 3600
"""Seconds a session lasts at most; the user logs in with the token again after."""


@dataclass(frozen=True)
class Session:
    token_name: str
    token_sha256: str
    """The secret hash of the token it was made from: a new token of the same name does not
    inherit the session."""
    csrf: str
    expires_at: float

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(self.csrf, presented)

    def belongs_to(self, token: ApiToken) -> bool:
        return hmac.compare_digest(self.token_sha256, token.secret_sha256)


def _plausible(session_id: str) -> bool:
    return bool(session_id) and len(session_id) <= 128


def _decode(raw: str | bytes | None) -> Session | None:
    if not raw:
        return None
    data = json.loads(raw)
    return Session(
        str(data["token"]), str(data["token_sha256"]), str(data["csrf"]),
        float(data["expires_at"]),
    )  # fmt: skip


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """The sessions of one deployment, in Redis, expiring by themselves."""

    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def create(self, token: ApiToken, now: float) -> tuple[str, Session]:
        """A new session of ``token``: its id (the cookie's value) and the session."""
        ttl = float(SESSION_TTL)
        if token.expires_at is not None:
            ttl = min(ttl, token.expires_at - now)
        session_id = secrets.token_urlsafe(32)
        session = Session(token.name, token.secret_sha256, secrets.token_urlsafe(32), now + ttl)
        record = {
            "token": session.token_name,
            "token_sha256": session.token_sha256,
            "csrf": session.csrf,
            "expires_at": session.expires_at,
        }
        self.client.set(
            self.keys.web_session(_hash(session_id)), json.dumps(record), px=max(1, int(ttl * 1000))
        )
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        if not _plausible(session_id):
            return None
        return _decode(self.client.get(self.keys.web_session(_hash(session_id))))

    async def get_async(self, client: AsyncRedisClient, session_id: str) -> Session | None:
        """:meth:`get` on an asyncio client."""
        if not _plausible(session_id):
            return None
        return _decode(await client.get(self.keys.web_session(_hash(session_id))))

    def delete(self, session_id: str) -> None:
        self.client.delete(self.keys.web_session(_hash(session_id)))
