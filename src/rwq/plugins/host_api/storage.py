"""Plugin storage: each plugin's own key-value namespace in Redis, held to its manifest's quota.

A plugin's data is one Redis hash (:meth:`rwq.queue.keys.Keys.plugin_storage`) plus a counter
of the bytes it holds, both under the plugin's hash tag, so the data survives restarts, reloads
and updates and one plugin's name can never reach another's keys. Quotas (keys, and bytes =
the sum of key and value lengths in UTF-8) are enforced inside a Lua script, so concurrent
writers can never push a plugin past them: a write that would exceed either is refused and
changes nothing, and overwriting a key accounts only the size difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rwq.plugins.contract.errors import InvalidArgument, QuotaExceeded
from rwq.queue.keys import Keys, check_plugin_name

MAX_KEY_LENGTH = 256
"""Longest key, in UTF-8 bytes."""
MAX_VALUE_BYTES = 64 * 1024
"""Largest value (UTF-8 bytes of the string, JSON text by convention)."""
MAX_LIST = 1000
"""Most keys one :meth:`PluginStorage.list` returns."""


class StorageError(InvalidArgument):
    """A storage call was given a bad key or value; ``argument`` names it."""

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message, argument=argument)


class StorageQuotaExceeded(QuotaExceeded):
    """A write would take the plugin past its quota of keys or bytes; nothing changed."""

    def __init__(self, plugin: str, quota: str, limit: int, requested: int) -> None:
        self.quota = quota
        """``keys`` or ``bytes``."""
        self.limit = limit
        self.requested = requested
        """What the plugin would hold after the write."""
        super().__init__(
            f"plugin {plugin!r} storage quota exceeded: {requested} {quota} > {limit} allowed"
            " (raise resources.max_storage / max_storage_keys in the manifest)",
            plugin=plugin,
        )


@dataclass(frozen=True)
class StorageUsage:
    """What a plugin holds and may hold."""

    keys: int
    bytes: int
    max_keys: int
    max_bytes: int

    def to_dict(self) -> dict[str, int]:
        return {
            "keys": self.keys,
            "bytes": self.bytes,
            "max_keys": self.max_keys,
            "max_bytes": self.max_bytes,
        }


# The byte counter is rebuilt from the hash if it went missing (an operator deleted it, or
# data restored from an old dump): quotas must rest on the real content, never on a guess.
_USED = r"""
local data, usage = KEYS[1], KEYS[2]
local function used()
  local raw = redis.call('GET', usage)
  if raw then return tonumber(raw) end
  local total = 0
  local flat = redis.call('HGETALL', data)
  for i = 1, #flat, 2 do total = total + #flat[i] + #flat[i + 1] end
  if total > 0 then redis.call('SET', usage, total) end
  return total
end
"""

# KEYS: data, usage. ARGV: key, value, max_keys, max_bytes.
# Returns {1, keys, bytes} when stored, {0, 'keys'|'bytes', requested} when refused.
_SET = (
    _USED
    + r"""
local key, value = ARGV[1], ARGV[2]
local max_keys, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local bytes = used()
local count = redis.call('HLEN', data)
local delta = #key + #value
if redis.call('HEXISTS', data, key) == 1 then
  delta = #value - redis.call('HSTRLEN', data, key)
else
  count = count + 1
  if count > max_keys then return {0, 'keys', count} end
end
-- A write that frees space is always allowed, even over a quota lowered since.
if delta > 0 and bytes + delta > max_bytes then return {0, 'bytes', bytes + delta} end
redis.call('HSET', data, key, value)
if delta ~= 0 then redis.call('INCRBY', usage, delta) end
return {1, count, bytes + delta}
"""
)

# KEYS: data, usage. ARGV: key. Returns 1 when the key existed.
_DELETE = (
    _USED
    + r"""
local key = ARGV[1]
local bytes = used()
local size = redis.call('HSTRLEN', data, key)
if redis.call('HDEL', data, key) == 0 then return 0 end
if redis.call('HLEN', data) == 0 then
  redis.call('DEL', usage)
else
  redis.call('SET', usage, bytes - #key - size)
end
return 1
"""
)

# KEYS: data, usage. Returns {keys, bytes}.
_USAGE = (
    _USED
    + r"""
return {redis.call('HLEN', data), used()}
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_key(key: Any) -> str:
    """Return ``key`` if it is a valid storage key (1-256 UTF-8 bytes, no control characters),
    else raise :class:`StorageError`."""
    if not isinstance(key, str) or not key:
        raise StorageError(f"a storage key is a non-empty string, got {key!r:.80}", "key")
    if not key.isprintable():
        raise StorageError(f"a storage key may not hold control characters: {key!r:.80}", "key")
    if len(key.encode()) > MAX_KEY_LENGTH:
        raise StorageError(f"a storage key is at most {MAX_KEY_LENGTH} bytes", "key")
    return key


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class PluginStorage:
    """One plugin's key-value store.

    Args:
        client: a Redis (or cluster) client with ``decode_responses=True``.
        keys: the deployment's key space.
        plugin: the plugin's name (``[a-z0-9-]``, so it cannot leave its namespace).
        max_keys: most keys the plugin may hold (manifest ``resources.max_storage_keys``).
        max_bytes: most bytes, keys plus values (manifest ``resources.max_storage``).
        max_value: largest single value in bytes.
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        plugin: str,
        *,
        max_keys: int,
        max_bytes: int,
        max_value: int = MAX_VALUE_BYTES,
    ) -> None:
        if max_keys < 0 or max_bytes < 0:
            raise StorageError("storage quotas must be >= 0")
        self.client = client
        self.plugin = check_plugin_name(plugin)
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.max_value = max_value
        self._data = keys.plugin_storage(plugin)
        self._keys = [self._data, keys.plugin_storage_usage(plugin)]
        self._set = client.register_script(_SET)
        self._delete = client.register_script(_DELETE)
        self._usage = client.register_script(_USAGE)

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        value = self.client.hget(self._data, check_key(key))
        return None if value is None else _text(value)

    def set(self, key: str, value: str) -> StorageUsage:
        """Store ``value`` under ``key``; returns the usage after the write.

        Raises:
            StorageQuotaExceeded: the write would exceed a quota (nothing was written).
            StorageError: the key or value is invalid.
        """
        check_key(key)
        if not isinstance(value, str):
            raise StorageError(
                f"a stored value is a string (JSON text), got {type(value).__name__}", "value"
            )
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise StorageError(
                "a stored value holds a lone surrogate (not text)", "value"
            ) from None
        if size > self.max_value:
            raise StorageError(
                f"a stored value is at most {self.max_value} bytes, got {size}", "value"
            )
        reply = self._set(keys=self._keys, args=[key, value, self.max_keys, self.max_bytes])
        if int(reply[0]) == 0:
            quota = _text(reply[1])
            limit = self.max_keys if quota == "keys" else self.max_bytes
            raise StorageQuotaExceeded(self.plugin, quota, limit, int(reply[2]))
        return StorageUsage(int(reply[1]), int(reply[2]), self.max_keys, self.max_bytes)

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there."""
        return bool(self._delete(keys=self._keys, args=[check_key(key)]))

    def list(self, prefix: str = "", limit: int = MAX_LIST) -> list[str]:
        """Keys starting with ``prefix``, sorted, at most ``limit`` of them."""
        if not isinstance(prefix, str) or len(prefix.encode("utf-8", "replace")) > MAX_KEY_LENGTH:
            raise StorageError(
                f"a key prefix is a string of at most {MAX_KEY_LENGTH} bytes", "prefix"
            )
        if not 1 <= limit <= MAX_LIST:
            raise StorageError(f"limit must be 1-{MAX_LIST}, got {limit}", "limit")
        match = _escape_glob(prefix) + "*"
        # Values come along (HSCAN NOVALUES needs Redis 7.4); a plugin holds at most its quota.
        scan = self.client.hscan_iter(self._data, match=match, count=1000)
        found = {_text(k) for k, _ in scan}  # a rehash may return a key twice
        # HSCAN's glob is byte-wise; the startswith check keeps the contract exact.
        return sorted(k for k in found if k.startswith(prefix))[:limit]

    def usage(self) -> StorageUsage:
        """Keys and bytes held now, with the quotas."""
        count, used = self._usage(keys=self._keys, args=[])
        return StorageUsage(int(count), int(used), self.max_keys, self.max_bytes)

    def clear(self) -> None:
        """Remove every key of the plugin (when it is uninstalled with ``--purge-data``)."""
        self.client.delete(*self._keys)
