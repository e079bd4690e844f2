"""The one reader of the queues' event streams: follows a set of streams from where each stood,
without consumer groups (every reader sees every event), on one server or a cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from redis.cluster import RedisCluster

from rwq.connection import is_cluster
from rwq.queue.events import Event

__all__ = ["StreamReader"]

Replies = list[tuple[str, list[tuple[str, dict[str, str]]]]]


class StreamReader:
    """Reads new entries of streams (by key, each with the queue it belongs to; ``""`` for the
    system stream) as :class:`~rwq.queue.events.Event` objects, oldest first.

    Not thread-safe: one thread reads.
    """

    def __init__(self, client: Any, *, count: int = 500) -> None:
        self.client = client
        self.count = count
        """Most entries taken from one stream per read."""
        self.cluster = is_cluster(client)
        self.positions: dict[str, str] = {}
        """Stream key -> id of the last entry seen."""
        self.queues: dict[str, str] = {}
        """Stream key -> queue name."""

    def follow(self, streams: Mapping[str, str], *, from_start: bool = False) -> None:
        """Read ``streams`` (key -> queue) from now on, or from their first entry."""
        new = {key: queue for key, queue in streams.items() if key not in self.positions}
        if not new:
            return
        if from_start:
            lasts: list[Any] = [[] for _ in new]
        else:
            pipe = self.client.pipeline(transaction=False)
            for key in new:
                pipe.xrevrange(key, "+", "-", count=1)
            lasts = pipe.execute()
        for (key, queue), last in zip(new.items(), lasts, strict=True):
            self.positions[key] = last[0][0] if last else "0-0"
            self.queues[key] = queue

    def read(self, block_ms: int | None = None) -> list[Event]:
        """The entries added since the last read, oldest first (each stream's order kept). On
        one server, waits up to ``block_ms`` for the first one; a cluster is not waited on (its
        streams live on several nodes: the caller paces its polls)."""
        if not self.positions:
            return []
        replies = self._read_cluster() if self.cluster else self._read(block_ms)
        events: list[Event] = []
        for key, entries in replies:
            if not entries:
                continue
            queue = self.queues.get(key, "")
            events.extend(Event.from_entry(entry_id, fields, queue) for entry_id, fields in entries)
            self.positions[key] = entries[-1][0]
        if len(replies) > 1:
            events.sort(key=lambda e: e.ts)  # stable: each stream's order is kept
        return events

    def _read(self, block_ms: int | None) -> Replies:
        reply = self.client.xread(self.positions, count=self.count, block=block_ms)
        return _stream_replies(reply)

    def _read_cluster(self) -> Replies:
        client: RedisCluster = self.client
        by_node: dict[str, tuple[Any, list[str]]] = {}
        for key in self.positions:
            node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
            entry = by_node.get(node.name)
            if entry is None:
                entry = by_node[node.name] = (client.get_redis_connection(node), [])
            entry[1].append(key)
        replies: Replies = []
        for connection, keys in by_node.values():
            pipe = connection.pipeline(transaction=False)
            for key in keys:
                pipe.xread({key: self.positions[key]}, count=self.count)
            for key, result in zip(keys, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(result, redis.ResponseError):
                    # MOVED/ASK after a resharding: the cluster client follows the redirect
                    # and refreshes its slot map for the next poll.
                    result = client.xread({key: self.positions[key]}, count=self.count)
                elif isinstance(result, Exception):
                    raise result
                replies.extend(_stream_replies(result))
        return replies


def _stream_replies(reply: Any) -> Replies:
    """XREAD's reply as ``[(key, [(id, fields), ...]), ...]`` (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        items = list(reply.items())
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in items]
    return [(key, entries) for key, entries in reply]
