"""``rwq enqueue --unique-key``: the options of unique jobs and the error of a held key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer

from rwq.cli.context import UsageError, out, print_json_out
from rwq.errors import RwqError
from rwq.queue.job import Job, JobError, new_job_id
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

    def checked(self) -> dict[str, Any]:
        """The options as ``Producer.enqueue`` takes them; raises :class:`UsageError` naming
        a bad one."""
        if self.key is not None:
            try:
                check_unique_key(self.key, "--unique-key")
            except JobError as exc:
                raise UsageError(str(exc)) from None
        if self.on_duplicate not in ON_DUPLICATE:
            raise UsageError(
                f"--on-duplicate: expected refuse or existing, got {self.on_duplicate!r}"
            )
        ttl = None
        if self.ttl is not None:
            if self.key is None:
                raise UsageError("--unique-ttl: needs --unique-key")
            try:
                ttl = parse_timeout(self.ttl, "--unique-ttl")
            except TimeoutValueError as exc:
                raise UsageError(str(exc)) from None
        return {"unique_key": self.key, "unique_ttl": ttl, "on_duplicate": self.on_duplicate}

    def own_id(self, job_id: str | None) -> str | None:
        """The id to enqueue with: with a unique key always one of ours, so that another id
        coming back means another job holds the key."""
        return new_job_id() if self.key is not None and job_id is None else job_id

    def shown_existing(self, job: Job, job_id: str | None, as_json: bool) -> bool:
        """Print the job that holds the key (``--on-duplicate existing``) if ``job`` is that
        one, not ours (``job_id``); whether it was."""
        if self.key is None or job.id == job_id:
            return False
        if as_json:
            print_json_out({**job.to_dict(), "duplicate_of_unique_key": self.key})
        else:
            out.print(f"job {job.id} holds unique key {self.key!r} on {job.queue} "
                      f"({job.state}); not enqueued again")  # fmt: skip
        return True
