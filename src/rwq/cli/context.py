"""What every ``rwq`` command shares: the root options' context, the consoles and the
command-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

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

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            from rwq.connection import connect

            self._broker = Broker(connect(self.settings), self.settings)
        return self._broker

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
