from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwq.units import UnitError, parse_duration, parse_positive_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("500ms", 0.5), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1.5", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [("10MB", 10_000_000), ("1KiB", 1024), ("512", 512)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "soon", "-1s", "5 parsecs", "1e3s"])
def test_bad_durations_name_the_field(bad: str) -> None:
    with pytest.raises(UnitError, match="timeout"):
        parse_duration(bad, "timeout")


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_any_whole_duration_parses(value: int, unit: str) -> None:
    assert parse_duration(f"{value}{unit}") >= 0


def test_format_age_picks_the_unit() -> None:
    from rwq.units import format_age

    assert format_age(None) == "-"
    assert format_age(4.25) == "4.2s"
    assert format_age(90) == "1.5m"
    assert format_age(5400) == "1.5h"
    assert format_age(3 * 86400) == "3.0d"


def test_a_positive_duration_is_more_than_zero_and_bounded() -> None:
    assert parse_positive_duration("1.5", "--timeout", 60) == 1.5
    assert parse_positive_duration("250ms", "--timeout", 60) == 0.25
    for text, reason in [("0", "more than 0"), ("0ms", "more than 0"), ("2m", "at most 30s")]:
        with pytest.raises(UnitError, match=f"--timeout: .*{reason}"):
            parse_positive_duration(text, "--timeout", 30)
