"""The Lua scripts that make every queue transition atomic, each with its event.

Each script is a file in :mod:`rwq.queue.lua`, run after the shared ``prelude.lua`` (the
server clock, event appends, the pending score). Each touches the keys of exactly one queue
(one hash tag), so it runs on Redis Cluster: scripts take the queue's key-prefix ("tag") as
KEYS[1] and build the other keys of that queue from it; declaring the prefix routes the call
to the right slot. A script's file says its arguments and what it returns.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from redis.client import Pipeline
from redis.cluster import ClusterPipeline

NAMES = (
    "enqueue",
    "dequeue",
    "complete",
    "fail",
    "release",
    "requeue_dead",
    "adopt",
    "drop_dead",
    "delete_dead",
    "purge",
    "pause",
    "stats",
    "throughput",
    "watch",
    "fire_schedule",
)
"""Every queue script, by the name of its file in :mod:`rwq.queue.lua` (without ``.lua``)."""


@cache
def source(name: str) -> str:
    """The full Lua source of script ``name``: the prelude, then the script's file."""
    lua = resources.files("rwq.queue.lua")
    return lua.joinpath("prelude.lua").read_text() + lua.joinpath(f"{name}.lua").read_text()


class _Script:
    """One registered script.

    Called on a client it is redis-py's ``EVALSHA`` with ``EVAL`` fallback. Queued on a
    pipeline it is a bare ``EVALSHA``: redis-py would otherwise ask ``SCRIPT EXISTS`` before
    every such pipeline, an extra round trip on the hot path; :meth:`Broker.execute` loads the
    scripts and runs the pipeline again if the server answers ``NOSCRIPT``. In a cluster
    pipeline, where redis-py refuses EVALSHA, it is sent as ``EVAL`` (the server reuses its
    compiled copy).
    """

    def __init__(self, script: Any) -> None:
        self._script = script

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> Any:
        pipe: Any = client
        if isinstance(client, ClusterPipeline):
            return pipe.execute_command("EVAL", self._script.script, len(keys), *keys, *args)
        if isinstance(client, Pipeline):
            return pipe.execute_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
        return self._script(keys=keys, args=args, client=client)

    @property
    def source(self) -> str:
        return str(self._script.script)


class Scripts:
    """The queue scripts registered on one client (``EVALSHA`` with ``EVAL`` fallback)."""

    def __init__(self, client: Any) -> None:
        self._scripts = {name: _Script(client.register_script(source(name))) for name in NAMES}

    def load(self, client: Any) -> None:
        """Load every script on the server (on a cluster: on every primary)."""
        for script in self._scripts.values():
            client.script_load(script.source)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._scripts[name]
        except KeyError:
            raise AttributeError(name) from None
