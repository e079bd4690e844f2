"""Checking a host call's arguments against its declaration: unknown keys, types, ranges,
sizes, nesting and text that is not text are refused with :class:`InvalidArgument` naming
the argument."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from rwq.plugins.contract.errors import InvalidArgument
from rwq.plugins.contract.host_functions import (
    PLUGIN_QUEUES,
    REQUIRED,
    SPECS,
    HostFunctionSpec,
    Param,
)

__all__ = ["MAX_JSON_DEPTH", "validate_arguments"]

_IDENTITY_KEYS = frozenset(
    {"plugin", "caller", "from", "source", "chain", "identity", "as", "on_behalf_of", "sender"}
)
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class _Bad(Exception):
    """A parameter's value is refused (turned into :class:`InvalidArgument`)."""


MAX_JSON_DEPTH = 64
"""Objects and lists in an argument nest at most this deep."""


def _json_size(value: Any) -> int:
    _check_depth(value)
    try:
        return len(_JSON.encode(value))
    except (TypeError, ValueError, RecursionError) as exc:
        raise _Bad(f"not a JSON value ({exc})") from None


def _check_depth(value: Any) -> None:
    """Refuse nesting deeper than :data:`MAX_JSON_DEPTH` and strings that are not text (lone
    surrogates), without recursing."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list | tuple):
            if depth > MAX_JSON_DEPTH:
                raise _Bad(f"nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _check_text(text: str) -> None:
    if not text.isascii() and any("\ud800" <= c <= "\udfff" for c in text):
        raise _Bad("holds a lone surrogate (not text)")


def _checker(p: Param) -> Callable[[Any], Any]:
    """A function that returns the checked value of ``p`` or raises :class:`_Bad`."""
    regex = re.compile(p.pattern) if p.pattern else None
    choices = frozenset(p.choices)

    def in_range(value: float) -> None:
        if p.minimum is not None and value < p.minimum:
            raise _Bad(f"must be at least {p.minimum:g}, got {_number_shown(value)}")
        if p.maximum is not None and value > p.maximum:
            raise _Bad(f"must be at most {p.maximum:g}, got {_number_shown(value)}")

    def string(value: Any) -> str:
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {_kind(value)}")
        _check_text(value)
        if p.max_length is not None and len(value) > p.max_length:
            raise _Bad(f"at most {p.max_length} characters, got {len(value)}")
        if choices and value not in choices:
            raise _Bad(f"must be one of {', '.join(p.choices)}, got {value[:64]!r}")
        if regex is not None and not regex.fullmatch(value):
            raise _Bad(f"{value[:64]!r} does not match {p.pattern}")
        return value

    def check(value: Any) -> Any:
        if value is None:
            if p.nullable:
                return None
            raise _Bad("may not be null")
        kind = p.type
        if kind == "string":
            return string(value)
        if kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise _Bad(f"expected an integer, got {_kind(value)}")
            in_range(value)
            return value
        if kind == "number":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise _Bad(f"expected a number, got {_kind(value)}")
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                raise _Bad(f"must be a finite number, got {_number_shown(value)}")
            in_range(value)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise _Bad(f"expected true or false, got {_kind(value)}")
            return value
        if kind == "string[]":
            if not isinstance(value, list | tuple):
                raise _Bad(f"expected a list of strings, got {_kind(value)}")
            if p.max_length is not None and len(value) > p.max_length:
                raise _Bad(f"at most {p.max_length} items, got {len(value)}")
            return tuple(string(v) for v in value)
        if kind == "object" and not (
            isinstance(value, dict) and all(isinstance(k, str) for k in value)
        ):
            raise _Bad(f"expected an object, got {_kind(value)}")
        size = _json_size(value)  # object and json
        if p.max_length is not None and size > p.max_length:
            raise _Bad(f"at most {p.max_length} bytes of JSON, got {size}")
        return value

    return check


def _number_shown(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


_Checkers = tuple[tuple[str, Callable[[Any], Any], Any], ...]
_CHECKERS: dict[str, _Checkers] = {
    spec.name: tuple((p.name, _checker(p), p.default) for p in spec.params) for spec in SPECS
}
_PARAM_NAMES = {spec.name: frozenset(p.name for p in spec.params) for spec in SPECS}


def validate_arguments(
    spec: HostFunctionSpec, args: Any, plugin_queues: tuple[str, ...]
) -> dict[str, Any]:
    """The arguments of a call checked against ``spec``, defaults filled in."""
    if args is None:
        args = {}
    elif not isinstance(args, dict):
        raise InvalidArgument(f"arguments must be an object, got {_kind(args)}", function=spec.name)
    names = _PARAM_NAMES[spec.name]
    for key in args:
        if key not in names:
            if key in _IDENTITY_KEYS:
                raise InvalidArgument(
                    f"{key!r} is not an argument: a call always acts as the calling plugin",
                    function=spec.name,
                    argument=str(key),
                )
            known = ", ".join(p.name for p in spec.params) or "none"
            raise InvalidArgument(
                f"unknown argument {str(key)[:64]!r} (arguments: {known})",
                function=spec.name,
                argument=str(key)[:64],
            )
    out: dict[str, Any] = {}
    for name, check, default in _CHECKERS[spec.name]:
        if name in args:
            try:
                out[name] = check(args[name])
            except _Bad as exc:
                raise InvalidArgument(f"{name}: {exc}", function=spec.name, argument=name) from None
        elif default is REQUIRED:
            raise InvalidArgument(f"{name} is required", function=spec.name, argument=name)
        elif default is PLUGIN_QUEUES:
            out[name] = plugin_queues
        else:
            out[name] = default
    return out
