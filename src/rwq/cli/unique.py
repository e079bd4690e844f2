"""``rwq enqueue --unique-key``: the options of unique jobs and the error of a held key."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from rwq.cli.context import UsageError
from rwq.errors import RwqError
from rwq.queue.job import JobError
from rwq.queue.producer import ON_DUPLICATE, check_unique_key
from rwq.queue.timeouts import TimeoutValueError, parse_timeout

UNIQUE_KEY_OPTION = typer.Option(
    "--unique-key",
    help="Refuse this job while another job of the queue holds the key (until its TTL ends "
    "or it is cancelled).",
)
UNIQUE_TTL_OPTION = typer.Option("--unique-ttl", help="How long the unique key lives (default 1h).")
ON_DUPLICATE_OPTION = typer.Option(
    "--on-duplicate",
    help="When the key is held: refuse (an error) or existing (print the job holding it).",
)


class DuplicateError(RwqError):
    """``rwq enqueue --unique-key``: the key is held by another job."""


@dataclass(frozen=True)
class UniqueOptions:
    """``--unique-key``, ``--unique-ttl`` and ``--on-duplicate``."""

    key: str | None = None
    ttl: str | None = None
    on_duplicate: str = "refuse"

    def checked_ttl(self) -> float | None:
        """The seconds of ``--unique-ttl``, once every option is checked; raises
        :class:`UsageError` naming the option."""
        if self.key is not None:
            try:
                check_unique_key(self.key, "--unique-key")
            except JobError as exc:
                raise UsageError(str(exc)) from None
        if self.on_duplicate not in ON_DUPLICATE:
            raise UsageError(
                f"--on-duplicate: expected refuse or existing, got {self.on_duplicate!r}"
            )
        if self.ttl is None:
            return None
        if self.key is None:
            raise UsageError("--unique-ttl: needs --unique-key")
        try:
            return parse_timeout(self.ttl, "--unique-ttl")
        except TimeoutValueError as exc:
            raise UsageError(str(exc)) from None
