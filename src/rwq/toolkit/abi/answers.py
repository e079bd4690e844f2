"""What each hook may answer (the result table of ``docs/abi.md``): the host's own checks where
it has one (``{"changed": bool}``, the UI element schema and caps, a health status) and null for
the hooks whose result the host ignores."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rwq.plugins.contract.ui import cap_elements, validate_elements
from rwq.plugins.engine.calls import panel_changed
from rwq.plugins.engine.health import health_answer
from rwq.plugins.runtimes.base import Hook

__all__ = ["ANSWERS", "check_answer", "shown"]


def _null(result: Any) -> None:
    if result is not None:
        raise ValueError("expected null")


def _null_or_refusal(result: Any) -> Any:
    if result is None:
        return None
    if isinstance(result, dict) and isinstance(result.get("error"), str):
        return result
    raise ValueError('expected null, or {"error": str} to refuse')


def _object(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    raise ValueError("expected a JSON object")


def _elements(result: Any) -> list[Any]:
    return validate_elements(cap_elements(result))


def _any(result: Any) -> Any:
    return result  # the runtime already refused anything that is not one JSON value


ANSWERS: dict[Hook, Callable[[Any], Any]] = {
    Hook.INITIALIZE: _null_or_refusal,
    Hook.ACTIVATE: _null,
    Hook.DEACTIVATE: _null,
    Hook.CLEANUP: _null,
    Hook.ON_EVENT: panel_changed,
    Hook.ON_TIMER: panel_changed,
    Hook.RENDER: _elements,
    Hook.ON_INPUT: panel_changed,
    Hook.GET_CONFIG: _object,
    Hook.SET_CONFIG: _null_or_refusal,
    Hook.HEALTH_CHECK: health_answer,
    Hook.EXPORT_STATE: _any,
    Hook.IMPORT_STATE: _null,
    Hook.ON_CALL: _any,
}
"""Each hook's check of its result: returns it, or raises ValueError saying what was expected."""


def check_answer(hook: Hook, result: Any) -> str | None:
    """Why ``result`` is not an answer of ``hook`` (None when it is one)."""
    try:
        ANSWERS[hook](result)
    except ValueError as exc:
        return str(exc)
    return None


def shown(value: Any, limit: int = 80) -> str:
    """``value`` as short JSON, for a reason line."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
