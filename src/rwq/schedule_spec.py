"""What a periodic job is, as written under ``schedules:`` in ``rwq.yaml`` or given to
``rwq schedule add``: its checks, and when it fires (its ticks).

A schedule fires on a cron expression in a time zone (Debian cron's rules, through
``cronsim``) or every fixed interval; ticks are epoch milliseconds. Interval ticks are the
multiples of the interval since the Unix epoch, so every scheduler computes the same ticks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rwq.errors import RwqError
from rwq.units import UnitError, parse_positive_duration

SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}\Z")
"""1-48 of letters, digits, '.', '_', '-': a job id is ``<name>:<tick ms>`` (at most 64)."""
QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
"""The rule of :data:`rwq.queue.keys.QUEUE_NAME` (a test holds them equal): checked here so a
bad queue in ``rwq.yaml`` is named with its file."""
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 366 * 86400.0
MAX_SCHEDULES = 1000
MISSED_POLICIES = ("coalesce", "skip")
SKIP_GRACE_MS = 60_000
"""With ``missed: skip``, a tick found due more than this late is skipped, not fired."""
COUNT_CAP = 1000
"""Missed ticks counted at most (a one-second schedule down for a day)."""


class ScheduleSpecError(RwqError):
    """A schedule is malformed: ``field`` names what is at fault (``cron``, ``every``...)."""

    def __init__(self, name: str, field: str, reason: str) -> None:
        self.name = name
        self.field = field
        self.reason = reason
        where = ".".join(part for part in (name, field) if part)
        super().__init__(f"schedule {where}: {reason}" if where else f"schedule: {reason}")


class ScheduleSpec(BaseModel):
    """One periodic job: enqueue ``payload`` on ``queue`` at every tick of ``cron`` (in
    ``timezone``) or ``every`` interval. ``missed`` says what a scheduler does with ticks that
    passed while none ran: ``coalesce`` fires one job for them all, ``skip`` fires none (a
    tick up to a minute late still fires)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    queue: str
    cron: str | None = None
    every: Any = None
    """A duration (``30s``, ``5m``, ``1h``; a number is seconds); stored as its shortest text."""
    payload: Any = None
    priority: Annotated[int, Field(ge=0, le=9)] = 5
    tenant: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    timezone: str = "UTC"
    missed: Literal["coalesce", "skip"] = "coalesce"

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not SCHEDULE_NAME.match(value):
            raise ValueError(f"a name is 1-48 of letters, digits, '.', '_' or '-', got {value!r}")
        return value

    @field_validator("queue")
    @classmethod
    def _valid_queue(cls, value: str) -> str:
        if not QUEUE_NAME.match(value):
            raise ValueError(
                f"a queue name is 1-128 of letters, digits, '.', '_', ':' or '-', got {value!r}"
            )
        if value in ("dead", "all"):
            raise ValueError("'dead' and 'all' are reserved queue names")
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = " ".join(value.split())
        if len(text.split()) != 5:
            raise ValueError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {value!r}"
            )
        try:
            next(CronSim(text, datetime.now(UTC)))
        except CronSimError as exc:
            raise ValueError(f"{exc} in {value!r}") from None
        except StopIteration:
            raise ValueError(f"{value!r} matches no time in the next 50 years") from None
        return text

    @field_validator("every")
    @classmethod
    def _valid_every(cls, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a duration like 30s or 5m, got {_shown(value)}")
        try:
            seconds = parse_positive_duration(value, "every", MAX_INTERVAL_S)
        except UnitError as exc:
            raise ValueError(str(exc).removeprefix("every: ")) from None
        if seconds < MIN_INTERVAL_S or seconds * 1000 != int(seconds * 1000):
            raise ValueError(f"at least 1s, in whole milliseconds; got {value!r}")
        return _duration_text(int(seconds * 1000))

    @field_validator("payload")
    @classmethod
    def _json_payload(cls, value: Any) -> Any:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name: UTC, Europe/Berlin...)"
            ) from None
        return value

    @field_validator("tenant")
    @classmethod
    def _printable_tenant(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
            raise ValueError("control characters are not allowed")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give either cron or every (one of them)")
        if self.every is not None and self.timezone != "UTC":
            raise ValueError("timezone applies to cron only (intervals are counted in UTC)")
        return self

    # -- what it means -----------------------------------------------------------------------

    @property
    def expression(self) -> str:
        """How it fires, for people: the cron expression (with its zone) or ``every 5m``."""
        if self.cron is not None:
            return self.cron if self.timezone == "UTC" else f"{self.cron} ({self.timezone})"
        return f"every {_duration_text(self.interval_ms)}"

    @cached_property
    def interval_ms(self) -> int:
        """The interval in ms (0 for a cron schedule)."""
        if self.every is None:
            return 0
        return round(parse_positive_duration(str(self.every), "every", MAX_INTERVAL_S) * 1000)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_tick(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms``."""
        if self.interval_ms:
            return (after_ms // self.interval_ms + 1) * self.interval_ms
        assert self.cron is not None
        start = after_ms
        for _ in range(4):  # a DST fold can hand back the same instant: step past it
            moment = datetime.fromtimestamp(start / 1000, self.zone)
            try:
                tick = int(next(CronSim(self.cron, moment)).timestamp() * 1000)
            except StopIteration:  # no match in 50 years (30 February...)
                return _NEVER
            if tick > after_ms:
                return tick
            start += 1000
        return _NEVER

    def latest_tick(self, at_ms: int) -> int | None:
        """The last tick at or before ``at_ms`` (None if there is none in 50 years)."""
        if self.interval_ms:
            return at_ms // self.interval_ms * self.interval_ms
        assert self.cron is not None
        moment = datetime.fromtimestamp(at_ms // 1000, self.zone) + timedelta(seconds=1)
        try:
            tick = int(next(CronSim(self.cron, moment, reverse=True)).timestamp() * 1000)
        except StopIteration:
            return None
        # Backwards, cronsim reads a repeated (DST) hour as its first pass: step forward to
        # the last tick that is really at or before `at_ms`.
        for _ in range(8):
            following = self.next_tick(tick)
            if following > at_ms:
                break
            tick = following
        return tick

    def count_ticks(self, first_ms: int, last_ms: int) -> int:
        """Ticks from ``first_ms`` to ``last_ms`` (both ticks, inclusive), at most
        :data:`COUNT_CAP`."""
        if last_ms < first_ms:
            return 0
        if self.interval_ms:
            return min(COUNT_CAP, (last_ms - first_ms) // self.interval_ms + 1)
        count, tick = 1, first_ms
        while count < COUNT_CAP:
            tick = self.next_tick(tick)
            if tick > last_ms:
                break
            count += 1
        return count

    def canonical(self) -> dict[str, Any]:
        """Its fields as stored and compared (unset options left out)."""
        return self.model_dump(exclude_defaults=True) | {"name": self.name, "queue": self.queue}


_NEVER = 2**62
"""A tick that never comes."""


def _duration_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def make_spec(name: str, fields: Mapping[str, Any]) -> ScheduleSpec:
    """Check one schedule.

    Raises:
        ScheduleSpecError: naming the field at fault and why.
    """
    if not isinstance(fields, Mapping):
        raise ScheduleSpecError(name, "", f"expected a mapping of options, got {_shown(fields)}")
    try:
        return ScheduleSpec.model_validate({**fields, "name": name})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        reason = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            known = ", ".join(f for f in ScheduleSpec.model_fields if f != "name")
            reason = f"unknown option (known: {known})"
        raise ScheduleSpecError(name, field, reason) from None


def parse_schedules(raw: Any) -> dict[str, ScheduleSpec]:
    """The ``schedules`` setting: a mapping of name to options (``rwq.yaml``), or its JSON
    text (``RWQ_SCHEDULES``, the canonical form); empty for none.

    Raises:
        ValueError: naming the schedule and option at fault.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"expected a JSON object of schedules: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a mapping of schedule name to options, got {_shown(raw)}")
    if len(raw) > MAX_SCHEDULES:
        raise ValueError(f"at most {MAX_SCHEDULES} schedules, got {len(raw)}")
    out: dict[str, ScheduleSpec] = {}
    for name, fields in raw.items():
        if not isinstance(name, str) or not SCHEDULE_NAME.match(name):
            raise ValueError(
                f"{_shown(name)}: a schedule name is 1-48 of letters, digits, '.', '_' or '-'"
            )
        try:
            out[name] = make_spec(name, fields)
        except ScheduleSpecError as exc:
            raise ValueError(str(exc).removeprefix("schedule ")) from None
    return out


def format_schedules(specs: Mapping[str, ScheduleSpec]) -> str:
    """The canonical text of the ``schedules`` setting, read back by :func:`parse_schedules`."""
    if not specs:
        return ""
    body = {
        name: {k: v for k, v in s.canonical().items() if k != "name"} for name, s in specs.items()
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else f"{text[:57]}..."
