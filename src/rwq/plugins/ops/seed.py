"""A seed file for ``rwq plugin check --seed``: the jobs and dead letters to create (under the
check's private key prefix) before the plugin loads, so its admin calls have queues to see.

One JSON object a line: ``queue`` and ``payload``, optionally ``tenant``, ``priority``,
``state`` (``pending`` by default, ``scheduled`` or ``dead``), ``delay`` (seconds, for
``scheduled``) and ``error`` (for ``dead``). Blank lines and lines starting with ``#`` are
skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rwq.config import Settings
from rwq.errors import RwqError

SeedState = Literal["pending", "scheduled", "dead"]
_FIELDS = frozenset({"queue", "payload", "tenant", "priority", "state", "delay", "error"})
SEED_WORKER = "rwq-check-seed"
"""The worker id the dead letters of a seed are failed by."""


class SeedFileError(RwqError):
    """A seed file line is not a job: names the file and the line."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


@dataclass(frozen=True)
class SeedJob:
    """One job to create."""

    queue: str
    payload: Any
    tenant: str | None = None
    priority: int = 5
    state: SeedState = "pending"
    delay: float = 60.0
    error: str = "seeded dead letter"


def read_seed(path: Path) -> list[SeedJob]:
    """The jobs of a seed file.

    Raises:
        SeedFileError: the file cannot be read or a line is not such an object.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeedFileError(path, 0, f"cannot read: {exc}") from None
    jobs = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            jobs.append(_job(path, number, line))
    return jobs


def _job(path: Path, number: int, line: str) -> SeedJob:
    def bad(reason: str) -> SeedFileError:
        return SeedFileError(path, number, reason)

    try:
        raw = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise bad(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise bad(f"expected a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise bad(f"unknown fields {unknown} (known: {', '.join(sorted(_FIELDS))})")
    if not isinstance(raw.get("queue"), str) or "payload" not in raw:
        raise bad("'queue' (a string) and 'payload' are required")
    state = raw.get("state", "pending")
    if state not in ("pending", "scheduled", "dead"):
        raise bad(f"'state' must be pending, scheduled or dead, got {state!r}")
    priority = raw.get("priority", 5)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise bad("'priority' must be a whole number")
    delay = raw.get("delay", 60.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 < delay < 86400:
        raise bad("'delay' must be a number of seconds under a day")
    for name in ("tenant", "error"):
        if name in raw and not isinstance(raw[name], str):
            raise bad(f"{name!r} must be a string")
    return SeedJob(
        raw["queue"], raw["payload"], raw.get("tenant"), priority, state, float(delay),
        raw.get("error", "seeded dead letter"),
    )  # fmt: skip


def plant(client: Any, settings: Settings, jobs: list[SeedJob]) -> None:
    """Create ``jobs`` on the server of ``client`` under ``settings.prefix``.

    Raises:
        RwqError: a job is refused (its queue name, tenant, priority or size).
    """
    from rwq.queue.broker import Broker, Failure
    from rwq.queue.producer import Producer

    broker = Broker(client, settings)
    producer = Producer(broker)
    # dead letters first, each taken and failed at once: the queue holds no other job yet
    for job in sorted(jobs, key=lambda j: j.state != "dead"):
        made = producer.enqueue(
            job.queue, job.payload, priority=job.priority, tenant=job.tenant,
            delay=job.delay if job.state == "scheduled" else None,
        )  # fmt: skip
        if job.state == "dead":
            [taken] = broker.fetch(job.queue, SEED_WORKER, 1).jobs
            assert taken.id == made.id
            broker.fail(job.queue, SEED_WORKER, [Failure(made.id, 0.0, job.error, permanent=True)])
