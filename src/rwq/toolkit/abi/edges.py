"""The cases at the edges: batches empty, full, large and of unknown types, an argument too big
to place, many calls in a row, host calls answered with errors, storage at its quota."""

from __future__ import annotations

import itertools
import time
from typing import Any

from rwq.plugins.contract.errors import ErrorCode
from rwq.plugins.runtimes.base import FaultKind, Hook, PluginFault
from rwq.toolkit.abi import arguments as args
from rwq.toolkit.abi.answers import shown
from rwq.toolkit.abi.harness import Guest, Harness, fault_text
from rwq.toolkit.abi.report import Case, CaseFailed, NotExercised
from rwq.units import counted

__all__ = ["EDGE_CASES", "ROUNDS"]

ROUNDS = (100, 200, 300)
"""Calls after which the repeated-calls case reads the memory size."""
ROUNDS_BUDGET_S = 60.0
"""The longest the repeated-calls case runs (a plugin whose calls take most of its timeout)."""
DRIVEN = (
    Hook.ON_EVENT,
    Hook.ON_TIMER,
    Hook.ON_INPUT,
    Hook.RENDER,
    Hook.GET_CONFIG,
    Hook.HEALTH_CHECK,
    Hook.EXPORT_STATE,
    Hook.DEACTIVATE,
    Hook.CLEANUP,
)
"""The hooks the host-errors and storage-quota cases call after initialize and activate."""
_SIZE = args.render_argument(80, 24, False)


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"


def _batch(guest: Guest, events: list[object], what: str) -> str:
    try:
        changed = guest.call(Hook.ON_EVENT, events)
        guest.call(Hook.RENDER, _SIZE)
    except CaseFailed as failed:
        hint = ""
        if guest.fault is not None and guest.fault.kind is FaultKind.MEMORY:
            cap = _kib(guest.instance.limits.max_memory_bytes)
            hint = (f"; it needs more than max_memory ({cap}) for this batch: raise "
                    "resources.max_memory, or hold less memory per event")  # fmt: skip
        raise CaseFailed(f"{what}: {failed}{hint}") from None
    return f"{what} answered {shown(changed)}; render after it is valid"


def _empty_batch(h: Harness) -> str:
    with h.started() as guest:
        return _batch(guest, [], "[]")


def _max_batch(h: Harness) -> str:
    with h.started() as guest:
        events = args.job_events(args.MAX_BATCH)
        size = _kib(args.batch_bytes(events))
        return _batch(guest, list(events), f"{args.MAX_BATCH} job events ({size})")


def _large_batch(h: Harness) -> str:
    quarter = h.limits.max_memory_bytes // 4
    events = args.large_batch(quarter)
    size = args.batch_bytes(events)
    whole = size < quarter - 64 * 1024  # the errors reached their cap first
    why = "the largest batch of job events" if whole else "a quarter of max_memory"
    with h.started() as guest:
        return _batch(guest, list(events), f"{len(events)} events, {_kib(size)} ({why})")


def _unknown_types(h: Harness) -> str:
    with h.started() as guest:
        events = args.unknown_types()
        kinds = ", ".join(str(e["type"]) for e in events)
        return _batch(guest, list(events), f"types and fields it cannot know ({kinds})")


def _out_of_memory(h: Harness) -> str:
    cap = h.limits.max_memory_bytes
    with h.started() as guest:
        argument: Any = {**_SIZE, "pad": "x" * (cap + 64 * 1024)}
        hook = Hook.RENDER
        if Hook.ON_EVENT in guest.hooks:
            hook, argument = Hook.ON_EVENT, args.oversized_batch(cap + 64 * 1024)
        try:
            guest.faulting(hook, argument)
        except PluginFault as fault:
            if fault.kind is not FaultKind.MEMORY or not guest.instance.usable:
                raise CaseFailed(
                    f"given an argument larger than max_memory ({_kib(cap)}) it failed with "
                    f"{fault_text(fault)}: rwq_alloc must answer 0 when it cannot allocate, "
                    "else the host reloads the instance and its state is lost"
                ) from None
            guest.call(Hook.RENDER, _SIZE)
            return f"{fault.reason}: the instance stayed usable and rendered"
        raise CaseFailed(f"a {hook.value} argument larger than max_memory was placed")


def _repeated_calls(h: Harness) -> str:
    with h.started() as guest:
        events = list(args.job_events(20))
        sizes = []
        deadline = time.monotonic() + ROUNDS_BUDGET_S
        for n in range(1, ROUNDS[-1] + 1):
            if time.monotonic() > deadline:
                raise NotExercised(f"{n - 1} rounds took more than {ROUNDS_BUDGET_S:g} s")
            try:
                if Hook.ON_EVENT in guest.hooks:
                    guest.call(Hook.ON_EVENT, events)
                guest.call(Hook.RENDER, _SIZE)
            except CaseFailed as failed:
                raise CaseFailed(f"round {n}: {failed}") from None
            if n in ROUNDS:
                sizes.append(guest.instance.memory_bytes())
    shown_sizes = ", ".join(_kib(s) for s in sizes)
    calls = "on_event (20 events) and render" if Hook.ON_EVENT in h.hooks else "render"
    if all(a < b for a, b in itertools.pairwise(sizes)):
        raise CaseFailed(
            f"its memory grew at every reading ({shown_sizes} after {'/'.join(map(str, ROUNDS))}"
            f" rounds of {calls}): free each argument and the previous result"
        )
    return f"memory {shown_sizes} after {'/'.join(map(str, ROUNDS))} rounds of {calls}"


def _drive(h: Harness, guest: Guest) -> None:
    """The hooks of a running plugin, each once, in the order of its life."""
    for hook in DRIVEN:
        if hook not in guest.hooks:
            continue
        argument: object = None
        if hook is Hook.ON_EVENT:
            argument = list(args.every_type())
        elif hook is Hook.ON_TIMER:
            argument = args.timer_argument((guest.timers() or [args.UNKNOWN_TIMER])[0])
        elif hook is Hook.ON_INPUT:
            argument = {"kind": "key", "key": "r"}
        elif hook is Hook.RENDER:
            argument = _SIZE
        guest.call(hook, argument)


def _host_errors(h: Harness) -> str:
    guest = h.guest(inject=True)
    try:
        refusal = guest.call(Hook.INITIALIZE, h.config)
        if refusal is None:
            guest.call(Hook.ACTIVATE)
            _drive(h, guest)
    finally:
        guest.close()
    made = guest.calls.made
    if not made:
        raise NotExercised("it made no host call in its lifecycle and hooks")
    codes = sorted({str(c.code) for c in made})
    names = sorted({c.function for c in made})
    refused = "; initialize refused to start, a valid answer" if refusal is not None else ""
    return (f"{counted(len(made), 'host call')} ({', '.join(names)}) answered errors "
            f"({', '.join(codes)}) and every hook answered{refused}")  # fmt: skip


def _permission_denied(h: Harness) -> str:
    denied = ErrorCode.PERMISSION_DENIED.value
    calls = [call for call in h.journal if any(c.code == denied for c in call.host_calls)]
    if not calls:
        made = sorted({c.function for call in h.journal for c in call.host_calls})
        it_made = f"it called {', '.join(made)}" if made else "it made no host call"
        raise NotExercised(f"no host call it made needed a permission ({it_made})")
    for call in calls:
        if call.fault is not None:
            refused = ", ".join(c.function for c in call.host_calls if c.code == denied)
            raise CaseFailed(f"{fault_text(call.fault)} after {refused} answered {denied}")
    functions = sorted({c.function for call in calls for c in call.host_calls if c.code == denied})
    return (f"{', '.join(functions)} answered {denied} (nothing is granted) and every hook that "
            "got one answered")  # fmt: skip


def _storage_quota(h: Harness) -> str:
    if "storage_set" not in h.host_imports:
        raise NotExercised("the module does not import storage_set")
    if "storage.write" not in h.grant_storage():
        raise NotExercised("its manifest does not ask for storage.write, so every storage_set "
                           "is answered permission_denied (see permission-denied)")  # fmt: skip
    usage = h.fill_storage()
    full = f"{usage.bytes:,} of {usage.max_bytes:,} bytes, {usage.keys} of {usage.max_keys} keys"
    try:
        with h.started() as guest:
            _drive(h, guest)
            made = [c for c in guest.calls.made if c.function == "storage_set"]
    except CaseFailed as failed:
        raise CaseFailed(f"with its store full ({full}): {failed}") from None
    if not made:
        raise NotExercised("it called storage_set in none of its hooks")
    refused = [c for c in made if c.code == ErrorCode.QUOTA_EXCEEDED.value]
    if not refused:
        codes = ", ".join(sorted({str(c.code) for c in made}))
        raise NotExercised(f"its storage_set calls were answered {codes}, none quota_exceeded")
    calls = counted(len(refused), "storage_set call")
    return f"{calls} answered quota_exceeded (its store full: {full}); it kept answering"


# permission-denied reads what every case before it saw; storage-quota grants the storage
# permissions, so it comes last.
EDGE_CASES = (
    Case("on-event-empty", "on_event with an empty batch ([]) answers {\"changed\": bool}",
         _empty_batch, (Hook.ON_EVENT,)),
    Case("on-event-max-batch", f"on_event with the largest batch the host hands over "
         f"({args.MAX_BATCH} events) answers", _max_batch, (Hook.ON_EVENT,)),
    Case("on-event-large", "on_event with 1000 events as large as job events get (errors of "
         "up to 2,000 characters), at most a quarter of max_memory of JSON, answers",
         _large_batch, (Hook.ON_EVENT,)),
    Case("on-event-unknown-types", "on_event with event types and fields it cannot know (a "
         "newer host's) answers", _unknown_types, (Hook.ON_EVENT,)),
    Case("argument-out-of-memory", "an argument larger than max_memory: rwq_alloc answers 0 "
         "(a memory fault) without trapping, and the instance carries on",
         _out_of_memory, (Hook.RENDER,)),
    Case("repeated-calls", f"{ROUNDS[-1]} rounds of on_event and render: every answer valid, "
         "and the memory does not grow at every reading", _repeated_calls, (Hook.RENDER,)),
    Case("host-errors", "with every host call answered an error (internal, rate_limited, "
         "invalid_argument, not_found), every hook still answers", _host_errors, (Hook.RENDER,)),
    Case("permission-denied", "the host calls it made that were refused (nothing is granted) "
         "did not make a hook fault", _permission_denied, (Hook.RENDER,)),
    Case("storage-quota", "with its store full, its own storage_set calls are answered "
         "quota_exceeded and it keeps answering", _storage_quota, (Hook.RENDER,)),
)  # fmt: skip
