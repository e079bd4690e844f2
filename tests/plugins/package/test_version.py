"""Semantic versions and dependency ranges."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwq.errors import RwqError
from rwq.plugins.package.version import Version, VersionError, parse_range, parse_version

# The precedence example of semver.org section 11, lowest first.
SEMVER_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
]


def test_parse_version_fields() -> None:
    v = parse_version("1.2.3-rc.1+build.5")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)
    assert v.prerelease == ("rc", "1")
    assert v.build == ("build", "5")
    assert str(v) == "1.2.3-rc.1+build.5"


def test_semver_precedence() -> None:
    versions = [parse_version(text) for text in SEMVER_ORDER]
    assert sorted(reversed(versions)) == versions
    for low, high in itertools.pairwise(versions):
        assert low < high and high > low and low != high


def test_build_metadata_is_ignored_in_precedence() -> None:
    assert parse_version("1.0.0+a") == parse_version("1.0.0+b")
    assert hash(parse_version("1.0.0+a")) == hash(parse_version("1.0.0"))


@pytest.mark.parametrize(
    "text", ["1.2", "1", "v1.2.3", "01.2.3", "1.02.3", "1.2.3-", "1.2.3-01", "1.2.3+", " 1.2.3", ""]
)
def test_invalid_versions_are_refused(text: str) -> None:
    with pytest.raises(VersionError) as info:
        parse_version(text)
    assert isinstance(info.value, RwqError)
    assert info.value.text == text
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        (">=1.0.0", ["1.0.0", "1.5.0", "9.0.0"], ["0.9.9", "1.0.0-rc.1"]),
        ("<2", ["1.9.9", "0.0.1"], ["2.0.0", "2.0.0-alpha", "2.1.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0", "2.0.0-alpha"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0", "1.1.9"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        ("1.x", ["1.0.0", "1.99.0"], ["2.0.0", "0.9.0"]),
        ("1.*", ["1.0.0"], ["2.0.0"]),
        ("1.2.x", ["1.2.0", "1.2.7"], ["1.3.0"]),
        ("*", ["0.0.0", "1.0.0-alpha", "99.0.0"], []),
        ("1.2.3", ["1.2.3", "1.2.3+build"], ["1.2.4", "1.2.3-rc.1"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4"]),
        (">=1.0.0 <2.0.0", ["1.0.0", "1.9.9"], ["2.0.0", "0.9.0"]),
        (">=1.0.0, <2.0.0", ["1.5.0"], ["2.0.0"]),
        (">= 1.0.0 , < 2", ["1.5.0"], ["2.0.0"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("<=1.2.3", ["1.2.3"], ["1.2.4"]),
    ],
)
def test_ranges(spec: str, inside: list[str], outside: list[str]) -> None:
    r = parse_range(spec)
    for text in inside:
        assert r.contains(parse_version(text)), f"{text} should be in {spec}"
        assert parse_version(text) in r
    for text in outside:
        assert not r.contains(parse_version(text)), f"{text} should not be in {spec}"


@pytest.mark.parametrize("spec", ["", "  ", ">=", ">=banana", "^1.2.3 foo", "1.2.3.4", "=>1.0"])
def test_invalid_ranges_are_refused(spec: str) -> None:
    with pytest.raises(VersionError):
        parse_range(spec)


def test_range_keeps_its_text() -> None:
    assert str(parse_range(" >=1.0.0 <2 ")) == ">=1.0.0 <2"


# -- properties -----------------------------------------------------------------------------

_numbers = st.integers(min_value=0, max_value=30)
_identifier = st.one_of(
    st.integers(min_value=0, max_value=30).map(str),
    st.text(alphabet="abcz-", min_size=1, max_size=4),
)
_versions = st.builds(
    Version,
    _numbers,
    _numbers,
    _numbers,
    st.lists(_identifier, max_size=3).map(tuple),
)


@given(_versions, _versions)
def test_ordering_is_total_and_antisymmetric(a: Version, b: Version) -> None:
    assert [a < b, a == b, a > b].count(True) == 1
    assert (a <= b) == (not a > b)
    assert (a < b) == (b > a)


@given(_versions, _versions, _versions)
def test_ordering_is_transitive(a: Version, b: Version, c: Version) -> None:
    low, mid, high = sorted([a, b, c])
    assert low <= mid <= high and low <= high


@given(_versions)
def test_text_round_trips(v: Version) -> None:
    assert parse_version(str(v)) == v


@given(_numbers, _numbers, _numbers)
def test_caret_and_tilde_contain_their_base(major: int, minor: int, patch: int) -> None:
    base = Version(major, minor, patch)
    assert parse_range(f"^{base}").contains(base)
    assert parse_range(f"~{base}").contains(base)
    assert parse_range(f"={base}").contains(base)
    assert not parse_range(f"^{base}").contains(Version(major + 1, 0, 0))


@given(_versions, _versions)
def test_bounds_agree_with_ordering(a: Version, b: Version) -> None:
    assert parse_range(f">={b}").contains(a) == (a >= b)
    assert parse_range(f">{b}").contains(a) == (a > b)
    assert parse_range(f"<={b}").contains(a) == (a <= b)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (">=abc", "'>=abc': not a version range; expected forms like >=1.0.0"),
        (">=1 <abc", "'>=1 <abc': cannot read '<abc'; expected forms like >=1.0.0"),
        ("1.2.x-rc.1", "'1.2.x-rc.1': a prerelease needs a full MAJOR.MINOR.PATCH"),
        (">=1 1.2.x-rc.1", "'>=1 1.2.x-rc.1': '1.2.x-rc.1': a prerelease needs a full"),
    ],
)
def test_a_range_error_quotes_the_input_once(spec: str, message: str) -> None:
    """It said "'>=abc': cannot read '>=abc'; …"."""
    with pytest.raises(VersionError) as info:
        parse_range(spec)
    assert str(info.value).startswith(message)
