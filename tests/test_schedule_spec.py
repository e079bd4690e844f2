"""Schedules as written: their checks (each error names the schedule and the option) and
their ticks (cron in a time zone through DST, intervals from the epoch)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwq.config import Settings
from rwq.errors import ConfigError
from rwq.queue.keys import QUEUE_NAME
from rwq.schedule_spec import (
    QUEUE_NAME as SPEC_QUEUE_NAME,
)
from rwq.schedule_spec import (
    ScheduleSpecError,
    format_schedules,
    make_spec,
    parse_schedules,
)

BERLIN = ZoneInfo("Europe/Berlin")


def ms(*args: int, fold: int = 0) -> int:
    return int(datetime(*args, tzinfo=BERLIN, fold=fold).timestamp() * 1000)  # type: ignore[misc]


def test_the_queue_name_rule_is_the_queues() -> None:
    assert SPEC_QUEUE_NAME.pattern == QUEUE_NAME.pattern


@pytest.mark.parametrize(
    ("fields", "field", "needle"),
    [
        ({"queue": "q"}, "", "either cron or every"),
        ({"queue": "q", "cron": "* * * * *", "every": "5m"}, "", "either cron or every"),
        ({"queue": "q", "cron": "61 * * * *"}, "cron", "Bad minute"),
        ({"queue": "q", "cron": "* * *"}, "cron", "expected 5 fields"),
        ({"queue": "q", "every": "0s"}, "every", "more than 0"),
        ({"queue": "q", "every": "500ms"}, "every", "at least 1s"),
        ({"queue": "q", "every": "soon"}, "every", "expected a duration"),
        ({"queue": "q", "every": True}, "every", "expected a duration"),
        ({"queue": "dead", "every": "1s"}, "queue", "reserved"),
        ({"queue": "a b", "every": "1s"}, "queue", "queue name"),
        ({"queue": "q", "every": "1s", "priority": 10}, "priority", "less than or equal to 9"),
        ({"queue": "q", "cron": "0 3 * * *", "timezone": "Mars/Base"}, "timezone", "unknown"),
        ({"queue": "q", "every": "1s", "timezone": "Europe/Berlin"}, "", "cron only"),
        ({"queue": "q", "every": "1s", "missed": "later"}, "missed", "coalesce"),
        ({"queue": "q", "every": "1s", "payload": float("nan")}, "payload", "not JSON"),
        ({"queue": "q", "every": "1s", "colour": "red"}, "colour", "unknown option"),
    ],
)  # fmt: skip
def test_bad_schedules_name_the_option(fields: dict[str, object], field: str, needle: str) -> None:
    with pytest.raises(ScheduleSpecError) as caught:
        make_spec("nightly", fields)
    assert caught.value.field == field and needle in caught.value.reason, caught.value
    assert str(caught.value).startswith(f"schedule nightly{'.' + field if field else ''}: ")


def test_interval_ticks_are_multiples_of_the_interval_since_the_epoch() -> None:
    spec = make_spec("t", {"queue": "q", "every": "5s"})
    assert (spec.interval_ms, spec.expression) == (5000, "every 5s")
    assert spec.next_tick(12_000) == 15_000 and spec.next_tick(15_000) == 20_000
    assert spec.latest_tick(12_000) == 10_000 and spec.latest_tick(15_000) == 15_000
    assert spec.count_ticks(5_000, 15_000) == 3


def test_cron_in_a_time_zone_follows_debian_cron_across_dst() -> None:
    daily = make_spec("d", {"queue": "q", "cron": "30 2 * * *", "timezone": "Europe/Berlin"})
    # Spring forward: 02:30 does not exist on 29 March; it fires at 03:00, once.
    assert daily.next_tick(ms(2026, 3, 29, 0, 0)) == ms(2026, 3, 29, 3, 0)
    assert daily.next_tick(ms(2026, 3, 29, 3, 0)) == ms(2026, 3, 30, 2, 30)
    # Fall back: 02:30 happens twice on 25 October; it fires once.
    first = daily.next_tick(ms(2026, 10, 25, 0, 0))
    assert first == ms(2026, 10, 25, 2, 30)
    assert daily.next_tick(first) == ms(2026, 10, 26, 2, 30)
    # A job every 30 minutes runs by elapsed time: both 02:00 and 02:30 of the repeated hour.
    half = make_spec("h", {"queue": "q", "cron": "*/30 * * * *", "timezone": "Europe/Berlin"})
    tick, seen = ms(2026, 10, 25, 1, 45), []
    for _ in range(4):
        tick = half.next_tick(tick)
        seen.append(tick)
    assert seen == [ms(2026, 10, 25, 2, 0), ms(2026, 10, 25, 2, 30),
                    ms(2026, 10, 25, 2, 0, fold=1), ms(2026, 10, 25, 2, 30, fold=1)]  # fmt: skip
    assert half.latest_tick(seen[2] + 60_000) == seen[2]
    assert half.count_ticks(seen[0], seen[3]) == 4


def test_a_cron_that_never_matches_is_refused() -> None:
    for cron in ("0 0 31 4 *", "* * */20 * 1L"):  # 31 April; the 1st or 21st and last Monday
        with pytest.raises(ScheduleSpecError) as caught:
            make_spec("n", {"queue": "q", "cron": cron})
        assert caught.value.field == "cron"


def test_schedules_in_rwq_yaml(tmp_path: Path) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text(
        "schedules:\n"
        "  nightly:\n    queue: reports\n    cron: '0 3 * * *'\n    timezone: Europe/Berlin\n"
        "    payload: {kind: nightly}\n    missed: skip\n"
        "  tick:\n    queue: q\n    every: 60s\n    priority: 7\n",
        encoding="utf-8",
    )
    settings = Settings.load(path, env={})
    specs = settings.schedule_specs
    assert specs["nightly"].payload == {"kind": "nightly"} and specs["nightly"].missed == "skip"
    assert specs["tick"].every == "1m" and specs["tick"].priority == 7
    # The canonical text reads back (a worker's environment carries it).
    again = Settings.load(None, env={"RWQ_SCHEDULES": settings.schedules})
    assert again.schedule_specs == specs
    assert parse_schedules(format_schedules(specs)) == specs


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("schedules: [a, b]\n", "expected a mapping"),
        ("schedules:\n  nightly:\n    queue: q\n    cron: '0 25 * * *'\n", "Bad hour"),
        ("schedules:\n  nightly: 5\n", "nightly: expected a mapping"),
        ("schedules:\n  'no spaces':\n    queue: q\n    every: 1s\n", "schedule name"),
        ("schedules:\n  t:\n    queue: q\n    every: 1s\n    tz: UTC\n", "t.tz: unknown option"),
    ],
)  # fmt: skip
def test_a_bad_schedule_names_the_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, env={})
    assert (caught.value.source, caught.value.field) == (str(path), "schedules")
    assert needle in caught.value.reason, caught.value


_ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
_CRONS = st.sampled_from(["*/15 * * * *", "30 2 * * *", "0 */3 * * 1-5", "5 1,2,3 * * *",
                          "0 0 1 * *", "45 23 * * 0"])  # fmt: skip
_TIMES = st.integers(min_value=1_600_000_000_000, max_value=2_100_000_000_000)


@given(_CRONS, _ZONES, _TIMES)
def test_cron_ticks_are_ordered_around_any_moment(cron: str, zone: str, at: int) -> None:
    spec = make_spec("p", {"queue": "q", "cron": cron, "timezone": zone})
    nxt, latest = spec.next_tick(at), spec.latest_tick(at)
    assert latest is not None and latest <= at < nxt
    assert spec.next_tick(latest) == nxt  # no tick between the latest and the next
    assert nxt % 60_000 == latest % 60_000 == 0


@given(st.integers(min_value=1, max_value=86_400), _TIMES)
def test_interval_ticks_are_ordered_around_any_moment(seconds: int, at: int) -> None:
    spec = make_spec("p", {"queue": "q", "every": seconds})
    nxt, latest = spec.next_tick(at), spec.latest_tick(at)
    assert latest is not None and latest <= at < nxt == latest + seconds * 1000
    assert spec.count_ticks(latest, nxt) == 2
