"""Human units in settings, flags and manifests: durations ("30s", "5m") and sizes ("10MB")."""

from __future__ import annotations

import math
import re

from rwq.errors import RwqError


class UnitError(RwqError):
    """A duration or size could not be read."""


MAX_SECONDS = float(2**53)
"""The largest duration read (about 285 million years): beyond it, seconds lose precision."""
MAX_BYTES = 2**63 - 1
"""The largest size read (what Redis and the OS count in)."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*", re.IGNORECASE)
_SIZE_FACTORS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1,
}  # fmt: skip


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Seconds in ``text``: a number (seconds) or a number with ``ms``, ``s``, ``m``, ``h``
    or ``d``. Raises :class:`UnitError` naming ``what`` otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise UnitError(f"{what}: must not be negative, got {text}")
        seconds = _finite(text)
    else:
        match = _DURATION.fullmatch(str(text))
        if not match:
            raise UnitError(
                f"{what}: expected a duration like 500ms, 30s, 5m or 2h, got {_shown(text)}"
            )
        seconds = _finite(match.group(1)) * _DURATION_FACTORS[match.group(2)]
    if not seconds <= MAX_SECONDS:
        raise UnitError(f"{what}: out of range (a finite number of seconds), got {_shown(text)}")
    return seconds


def parse_positive_duration(text: str | float, what: str, maximum: float) -> float:
    """Seconds in ``text`` as :func:`parse_duration` reads them, more than 0 and at most
    ``maximum`` (timeouts). Raises :class:`UnitError` naming ``what`` otherwise."""
    seconds = parse_duration(text, what)
    if not seconds > 0:
        raise UnitError(f"{what}: must be more than 0 seconds, got {_shown(text)}")
    if seconds > maximum:
        raise UnitError(f"{what}: at most {format_duration(maximum)}, got {_shown(text)}")
    return seconds


MAX_RATE_COUNT = 1_000_000
"""The most jobs a rate limit may allow per period (its window holds one entry per job)."""
MAX_RATE_PERIOD_S = 86400.0
"""Seconds: the longest period of a rate limit (a day)."""
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S.*?)\s*")


def parse_rate(text: str, what: str = "rate") -> tuple[int, float]:
    """``(count, period seconds)`` of a rate such as ``100/1m``, ``10/s`` or ``5/500ms``: a
    whole number of at least 1 and at most :data:`MAX_RATE_COUNT`, a slash, and a period (a
    duration, or a bare unit meaning one of it) of at least 1 ms and at most a day. Raises
    :class:`UnitError` naming ``what`` otherwise."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise UnitError(f"{what}: expected jobs per period like 100/1m, 10/s or 5/500ms, got "
                        f"{_shown(text)}")  # fmt: skip
    count = int(match.group(1))
    if not 1 <= count <= MAX_RATE_COUNT:
        raise UnitError(f"{what}: the count must be 1 to {MAX_RATE_COUNT:,}, got {_shown(text)}")
    period_text = match.group(2)
    if period_text in _DURATION_FACTORS:
        period_text = "1" + period_text
    period = parse_duration(period_text, f"{what} period")
    if not 0.001 <= period <= MAX_RATE_PERIOD_S:
        raise UnitError(f"{what}: the period must be 1ms to 1d, got {_shown(text)}")
    return count, period


def format_rate(count: int, period: float) -> str:
    """``100/1m``: a rate for people, read back by :func:`parse_rate`."""
    return f"{count}/{format_duration(period)}"


def format_duration(seconds: float) -> str:
    """``30d``, ``90s``, ``1.5s``: seconds in the largest unit that holds them whole, read back
    by :func:`parse_duration`."""
    for unit, factor in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= factor and (seconds / factor).is_integer():
            return f"{seconds / factor:g}{unit}"
    return f"{seconds * 1000:g}ms"


def parse_size(text: str | int, what: str = "size") -> int:
    """Bytes in ``text``: a number or a number with B, KB, MB, GB (powers of 1000) or KiB,
    MiB, GiB (powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise UnitError(f"{what}: must not be negative, got {_shown(text)}")
        size = float(text) if text <= MAX_BYTES else math.inf
    else:
        match = _SIZE.fullmatch(str(text))
        if not match:
            raise UnitError(f"{what}: expected a size like 512KB or 10MB, got {_shown(text)}")
        unit = match.group(2).lower() if match.group(2) else None
        size = _finite(match.group(1)) * _SIZE_FACTORS[unit]
    if not size <= MAX_BYTES:
        raise UnitError(f"{what}: out of range (at most 2**63-1 bytes), got {_shown(text)}")
    return text if isinstance(text, int) else int(size)


def _finite(number: str | float) -> float:
    """``number`` as a float; infinity for one too large (or NaN) to be a float."""
    try:
        value = float(number)
    except OverflowError:
        return math.inf
    return value if math.isfinite(value) else math.inf


def _shown(text: object) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else f"{shown[:37]}..."


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one: ``1 worker``, ``3 workers``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_figure(value: object) -> str:
    """A measured figure for people: thousands separated, three decimals below 1,000."""
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(format_figure(v) for v in value)
    return str(value)


def format_age(seconds: float | None) -> str:
    """A duration for people: ``12.3s``, ``4.5m``, ``1.2h``, ``2.0d``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
