"""Semantic versions (semver 2.0) and the version ranges plugin dependencies are written in.

Ranges follow npm's spelling: ``>=1.0.0``, ``<2``, ``^1.2.3``, ``~1.2``, ``1.x``, ``*``,
``=1.2.3`` and conjunctions separated by spaces or commas (``>=1.0.0 <2.0.0``). One deliberate
simplification: prereleases are ordinary versions, except that an upper bound ``<X.Y.Z`` (also
the implied bound of ``^``, ``~`` and ``x`` ranges) never admits ``X.Y.Z``'s own prereleases, so
``^1.2.3`` does not accept ``2.0.0-alpha``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal

from rwq.errors import RwqError

_NUM = r"0|[1-9][0-9]{0,17}"  # ASCII digits only ("\d" also takes "١٣"), at most 18
_IDENT = r"[0-9A-Za-z-]+"
_VERSION = re.compile(
    rf"^(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?\Z"
)
# A partial version in a range: 1, 1.2, 1.x, 1.2.*, or a full version.
_PARTIAL = re.compile(
    rf"^(?P<major>{_NUM}|[xX*])(?:\.(?P<minor>{_NUM}|[xX*])(?:\.(?P<patch>{_NUM}|[xX*])"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+{_IDENT}(?:\.{_IDENT})*)?)?)?\Z"
)
_OPERATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?(.*)\Z", re.DOTALL)
# ">= 1.0.0" is written with a space as often as without; glue operator and version first.
_SPACED_OPERATOR = re.compile(r"(>=|<=|>|<|=|\^|~)\s+")
_WILDCARDS = frozenset({"x", "X", "*"})

Op = Literal["<", "<=", ">", ">=", "="]


class VersionError(RwqError):
    """A version or range could not be read."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"{text!r}: {reason}")


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version; ordered by semver precedence (build metadata is ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = field(default=(), compare=False)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its prereleases; numeric identifiers sort before
        # alphanumeric ones and compare as numbers; a shorter prefix sorts first.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def parse_version(text: str) -> Version:
    """The :class:`Version` written as ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``."""
    if not isinstance(text, str):
        raise VersionError(str(text), "expected a version string like 1.2.3")
    match = _VERSION.match(text)
    if match is None:
        raise VersionError(text, "expected a semantic version like 1.2.3 or 1.2.3-beta.1")
    pre = match.group("pre")
    build = match.group("build")
    prerelease = tuple(pre.split(".")) if pre else ()
    for ident in prerelease:
        if ident.isdigit() and ident != "0" and ident.startswith("0"):
            raise VersionError(text, f"numeric prerelease identifier {ident!r} has a leading 0")
    return Version(
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        prerelease,
        tuple(build.split(".")) if build else (),
    )


@dataclass(frozen=True)
class Comparator:
    """One bound of a range: ``op`` applied to ``version``."""

    op: Op
    version: Version

    def accepts(self, version: Version) -> bool:
        if self.op == "<":
            return version < self.version
        if self.op == "<=":
            return version <= self.version
        if self.op == ">":
            return version > self.version
        if self.op == ">=":
            return version >= self.version
        return version == self.version

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


@dataclass(frozen=True)
class Range:
    """A set of versions: every comparator must accept (an empty range accepts all)."""

    text: str
    comparators: tuple[Comparator, ...]

    def contains(self, version: Version) -> bool:
        """Whether ``version`` satisfies every bound of this range."""
        return all(c.accepts(version) for c in self.comparators)

    def __contains__(self, version: object) -> bool:
        return isinstance(version, Version) and self.contains(version)

    def __str__(self) -> str:
        return self.text


def parse_range(text: str) -> Range:
    """The :class:`Range` written in ``text`` (see the module docstring for the syntax)."""
    if not isinstance(text, str):
        raise VersionError(str(text), "expected a version range string like >=1.0.0")
    glued = _SPACED_OPERATOR.sub(r"\1", text.strip())
    parts = [p for p in re.split(r"[\s,]+", glued) if p]
    if not parts:
        raise VersionError(text, "empty version range (use * for any version)")
    comparators: list[Comparator] = []
    for part in parts:
        comparators.extend(_parse_comparator(text, part))
    return Range(text.strip(), tuple(comparators))


def _parse_comparator(text: str, part: str) -> list[Comparator]:
    op_match = _OPERATOR.match(part)
    assert op_match is not None  # the pattern matches any string
    op, rest = op_match.group(1) or "", op_match.group(2)
    match = _PARTIAL.match(rest)
    # The whole range is quoted first: name the part only when there are others.
    whole = part == text.strip()
    if match is None:
        which = "not a version range" if whole else f"cannot read {part!r}"
        raise VersionError(
            text, f"{which}; expected forms like >=1.0.0, <2, ^1.2.3, ~1.2, 1.x or *"
        )
    numbers: list[int] = []
    for name in ("major", "minor", "patch"):
        value = match.group(name)
        if value is None or value in _WILDCARDS:
            break
        numbers.append(int(value))
    pre = match.group("pre")
    if pre and len(numbers) < 3:
        which = "" if whole else f"{part!r}: "
        raise VersionError(text, f"{which}a prerelease needs a full MAJOR.MINOR.PATCH")
    prerelease = tuple(pre.split(".")) if pre else ()
    lower = _padded(numbers, prerelease)
    upper = _next(numbers)  # first version past the partial one; None for "*"
    if not numbers and op not in ("<", ">"):
        return []  # "*", ">=*", "^x"...: any version, prereleases included

    if op == "^":
        return _caret(numbers, lower)
    if op == "~":
        tilde_upper = _next(numbers[:2]) if len(numbers) == 3 else upper
        return _between(lower, tilde_upper)
    if op in ("", "="):
        if len(numbers) == 3:
            return [Comparator("=", lower)]
        return _between(lower, upper)
    if op == ">=":
        return [Comparator(">=", lower)]
    if op == "<":
        return [_before(lower)]
    if op == ">":
        if upper is None:
            return [_before(Version(0, 0, 0))]  # above every version: nothing
        return [Comparator(">", lower)] if len(numbers) == 3 else [Comparator(">=", upper)]
    # "<=": a partial bound includes everything it names.
    if len(numbers) == 3:
        return [Comparator("<=", lower)]
    assert upper is not None
    return [_before(upper)]


def _padded(numbers: list[int], prerelease: tuple[str, ...]) -> Version:
    major, minor, patch = ([*numbers, 0, 0, 0])[:3]
    return Version(major, minor, patch, prerelease if len(numbers) == 3 else ())


def _next(numbers: list[int]) -> Version | None:
    """The lowest release above every version the partial ``numbers`` names."""
    if not numbers:
        return None
    if len(numbers) == 1:
        return Version(numbers[0] + 1, 0, 0)
    if len(numbers) == 2:
        return Version(numbers[0], numbers[1] + 1, 0)
    return Version(numbers[0], numbers[1], numbers[2] + 1)


def _before(bound: Version) -> Comparator:
    # "<2.0.0" must not admit 2.0.0-rc.1: "-0" is the lowest prerelease of a release.
    if bound.prerelease:
        return Comparator("<", bound)
    return Comparator("<", Version(bound.major, bound.minor, bound.patch, ("0",)))


def _between(lower: Version, upper: Version | None) -> list[Comparator]:
    bounds = [Comparator(">=", lower)]
    if upper is not None:
        bounds.append(_before(upper))
    return bounds


def _caret(numbers: list[int], lower: Version) -> list[Comparator]:
    # ^ allows changes that do not modify the left-most non-zero part of the version.
    significant = 0
    while significant < len(numbers) - 1 and numbers[significant] == 0:
        significant += 1
    return _between(lower, _next(numbers[: significant + 1]))
