"""What every ``rwq`` command shares: the root options' context, the consoles and the
command-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import typer

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.printable import PlainConsole, print_json
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker

__all__ = [
    "Context",
    "JsonFlag",
    "NotFoundError",
    "UsageError",
    "context_of",
    "err",
    "out",
    "print_json_out",
]

out = PlainConsole()
err = PlainConsole(stderr=True)


class UsageError(RwqError):
    """A command-line argument is malformed."""


class NotFoundError(RwqError):
    """What a command was asked to act on does not exist."""


@dataclass
class Context:
    """What the root options set up; the broker connects on first use."""

    settings: Settings
    _broker: Broker | None = field(default=None, repr=False)
    current: ClassVar[Context | None] = None
    """The context of the command running, for the one line of an error it ends with."""

    def __post_init__(self) -> None:
        Context.current = self

    @property
    def server(self) -> str:
        """The server the command talks to, for messages (password hidden)."""
        from rwq.connection import redact

        url = self.settings.redis_url
        return "the embedded Valkey" if url is None else redact(url)

    def unavailable(self, exc: BaseException) -> str:
        """The one line of an error that ended a command because Redis was away."""
        from rwq.outage import describe

        s = self.settings
        return (
            f"Redis at {self.server} is unavailable: {describe(exc)} (gave up after "
            f"{s.redis_retries + 1} tries; settings socket_timeout {s.socket_timeout:g}s, "
            f"socket_connect_timeout {s.socket_connect_timeout:g}s, redis_retries "
            f"{s.redis_retries})"
        )

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            from rwq.connection import connect

            self._broker = Broker(connect(self.settings), self.settings)
        return self._broker

    def broker_when_reachable(self) -> Broker:
        """:attr:`broker`, waiting (with backoff, logged once) while the server does not
        answer: a long-running command started during an outage starts when it ends. A URL
        that cannot work fails at once.

        Raises:
            ConnectionFailed: the URL or the settings are unusable.
        """
        import logging
        import time

        from redis.exceptions import RedisClusterException

        from rwq.errors import ConnectionFailed
        from rwq.outage import REDIS_FAILURES, Outage

        outage = Outage(
            f"connecting to {self.server}", logging.getLogger("rwq"),
            cap=self.settings.outage_backoff_max,
        )  # fmt: skip
        while True:
            try:
                broker = self.broker
            except ConnectionFailed as exc:
                if not isinstance(exc.__cause__, (*REDIS_FAILURES, RedisClusterException)):
                    raise
                time.sleep(outage.failed(exc))
                continue
            outage.succeeded()
            return broker

    @property
    def admin(self) -> Admin:
        return Admin(self.broker)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def context_of(ctx: typer.Context) -> Context:
    obj = ctx.obj
    assert isinstance(obj, Context)
    return obj


def print_json_out(data: Any) -> None:
    print_json(data, out.file)
