"""The cases that call each hook as the host does, with the arguments it hands over, and check
each answer's shape: the lifecycle in its order, then every hook of a running plugin."""

from __future__ import annotations

from rwq.plugins.runtimes.base import Hook
from rwq.toolkit.abi import arguments as args
from rwq.toolkit.abi.answers import shown
from rwq.toolkit.abi.harness import Harness
from rwq.toolkit.abi.report import Case, CaseFailed, NotExercised

__all__ = ["HOOK_CASES"]

NULL_ARGUMENT = (Hook.GET_CONFIG, Hook.HEALTH_CHECK, Hook.EXPORT_STATE)
"""Hooks of a running plugin whose argument is null, passed as ``(0, 0)`` (so are activate's,
deactivate's and cleanup's)."""


def _initialize(h: Harness) -> str:
    guest = h.guest()
    try:
        refusal = guest.call(Hook.INITIALIZE, h.config)
    finally:
        guest.close()
    if refusal is not None:
        raise CaseFailed(f"refused to start with its manifest's config: {refusal['error'][:200]}")
    return f"initialize({shown(h.config, 40)}) answered null"


def _activate(h: Harness) -> str:
    with h.started():
        return "initialize then activate answered null"


def _render(h: Harness) -> str:
    with h.started() as guest:
        counts = []
        for width, height, focused in args.RENDER_SIZES:
            try:
                elements = guest.call(Hook.RENDER, args.render_argument(width, height, focused))
            except CaseFailed as failed:
                raise CaseFailed(f"at {width}x{height}: {failed}") from None
            counts.append(f"{len(elements)} at {width}x{height}")
        return f"valid elements: {', '.join(counts)}"


def _on_event(h: Harness) -> str:
    with h.started() as guest:
        batch = args.every_type()
        changed = guest.call(Hook.ON_EVENT, batch)
        guest.call(Hook.RENDER, args.render_argument(80, 24, False))
        return f"one event of each of {len(batch)} types: answered {shown(changed)}"


def _on_timer(h: Harness) -> str:
    with h.started() as guest:
        timers = guest.timers()
        for n, timer in enumerate([*timers, args.UNKNOWN_TIMER]):
            try:
                guest.call(Hook.ON_TIMER, args.timer_argument(timer, n))
            except CaseFailed as failed:
                raise CaseFailed(f"timer {timer!r}: {failed}") from None
        own = f"its timers {', '.join(timers)} and" if timers else "no timer it set (it set none);"
        return f"{own} an unknown id answered {{changed: bool}}"


def _on_input(h: Harness) -> str:
    with h.started() as guest:
        elements = guest.call(Hook.RENDER, args.render_argument(80, 24, True))
        events = args.input_events(elements)
        for event in events:
            try:
                guest.call(Hook.ON_INPUT, event)
            except CaseFailed as failed:
                raise CaseFailed(f"input {shown(event, 60)}: {failed}") from None
            guest.call(Hook.RENDER, args.render_argument(80, 24, True))
        kinds = ", ".join(shown(e, 60) for e in events)
        return f"{len(events)} input events answered {{changed: bool}}: {kinds}"


def _get_config(h: Harness) -> str:
    with h.started() as guest:
        config = guest.call(Hook.GET_CONFIG)
        return f"answered an object: {shown(config, 60)}"


def _set_config(h: Harness) -> str:
    with h.started() as guest:
        reads = Hook.GET_CONFIG in guest.hooks
        config = guest.call(Hook.GET_CONFIG) if reads else h.config
        refusal = guest.call(Hook.SET_CONFIG, config)
        if refusal is not None:
            raise CaseFailed(
                f"refused its own configuration {shown(config, 60)}: {refusal['error']}"
            )
        if not reads:
            return "accepted the manifest's config (no get_config to read it back)"
        again = guest.call(Hook.GET_CONFIG)
        if again != config:
            raise CaseFailed(
                f"get_config answered {shown(config, 50)}, then after set_config of that "
                f"{shown(again, 50)}: a round trip must keep the configuration"
            )
        return "set_config(get_config()) accepted, and get_config answered the same after"


def _health_check(h: Harness) -> str:
    with h.started() as guest:
        guest.call(Hook.ON_EVENT, args.job_events(10))
        answer = guest.call(Hook.HEALTH_CHECK)
        return f"status {answer['status']!r}"


def _export_state(h: Harness) -> str:
    with h.started() as guest:
        guest.call(Hook.ON_EVENT, args.job_events(10))
        state = guest.call(Hook.EXPORT_STATE)
        return f"answered JSON after a batch: {shown(state, 60)}"


def _import_state(h: Harness) -> str:
    """The hand-over of a hot reload: the new version is initialized, the old one exports its
    state, the new one imports it and is activated, the old one is wound down."""
    if Hook.EXPORT_STATE not in h.hooks:
        raise NotExercised("the host calls import_state only when the version it replaces "
                           "exports rwq_export_state, and this one does not")  # fmt: skip
    with h.started() as old:
        old.call(Hook.ON_EVENT, args.job_events(10))
        new = h.guest()
        try:
            new.call(Hook.INITIALIZE, h.config)
            state = old.call(Hook.EXPORT_STATE)
            new.call(Hook.IMPORT_STATE, {"from_version": str(h.bundle.version), "state": state})
            new.call(Hook.ACTIVATE)
            new.call(Hook.RENDER, args.render_argument(80, 24, False))
            old.call(Hook.DEACTIVATE)
            old.call(Hook.CLEANUP)
        finally:
            new.close()
    return "a fresh instance imported its own export_state and rendered"


def _on_call(h: Harness) -> str:
    with h.started() as guest:
        call = {"function": "rwq_abi_check", "args": {"n": 1}, "caller": "rwq-abi-check"}
        answer = guest.call(Hook.ON_CALL, call)
        return f"an unknown function answered JSON: {shown(answer, 60)}"


def _null_argument(h: Harness) -> str:
    with h.started() as guest:
        called = [hook for hook in NULL_ARGUMENT if hook in guest.hooks]
        for _ in range(2):
            for hook in called:
                guest.call(hook)
        return f"{', '.join(hook.value for hook in called)} called twice with (0, 0) answered"


def _wind_down(h: Harness) -> str:
    with h.started() as guest:
        guest.call(Hook.ON_EVENT, args.job_events(10))
        guest.call(Hook.RENDER, args.render_argument(80, 24, False))
        guest.call(Hook.DEACTIVATE)
        guest.call(Hook.CLEANUP)
    return "deactivate then cleanup answered null"


HOOK_CASES = (
    Case("initialize", "initialize(config) answers null, or {\"error\": str} (a refusal fails "
         "the case: the manifest's own config must start it)", _initialize, (Hook.INITIALIZE,)),
    Case("activate", "activate, called with (0, 0) after initialize, answers null", _activate,
         (Hook.ACTIVATE,)),
    Case("render", "render answers UI elements the host accepts (schema and caps) at 80x24, "
         "1x1 and 200x60 focused", _render, (Hook.RENDER,)),
    Case("on-event", "on_event with one event of every type (and a plugin's) answers "
         "{\"changed\": bool}", _on_event, (Hook.ON_EVENT,)),
    Case("on-timer", "on_timer answers {\"changed\": bool} for each timer it set and for an id "
         "it never set", _on_timer, (Hook.ON_TIMER,)),
    Case("on-input", "on_input answers {\"changed\": bool} for a key, each of its buttons and "
         "selectable lists and tables, and an unknown kind", _on_input, (Hook.ON_INPUT,)),
    Case("get-config", "get_config answers an object", _get_config, (Hook.GET_CONFIG,)),
    Case("set-config", "set_config accepts what get_config answered (null), and get_config "
         "answers the same after", _set_config, (Hook.SET_CONFIG,)),
    Case("health-check", "health_check answers {\"status\": \"ok\"|\"degraded\"|\"failing\"}",
         _health_check, (Hook.HEALTH_CHECK,)),
    Case("export-state", "export_state answers JSON", _export_state, (Hook.EXPORT_STATE,)),
    Case("import-state", "a hot reload's hand-over: a new instance is initialized, imports the "
         "old one's export_state (answering null), is activated and renders", _import_state,
         (Hook.IMPORT_STATE,)),
    Case("on-call", "on_call of a function it does not have answers JSON (an error object, "
         "say) instead of trapping", _on_call, (Hook.ON_CALL,)),
    Case("null-argument", "hooks whose argument is null read (0, 0) as null: get_config, "
         "health_check, export_state, twice in a row", _null_argument, NULL_ARGUMENT),
    Case("wind-down", "deactivate then cleanup answer null, as when the plugin is unloaded or "
         "replaced", _wind_down, (Hook.DEACTIVATE, Hook.CLEANUP)),
)  # fmt: skip
