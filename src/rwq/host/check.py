"""``rwq plugin check``: one plugin hosted by the same builder as the TUI's, fed events from a
file, rendered after each batch, and reported on.

The host gets a plugins dir holding only this bundle and a temporary state dir, so the user's
grants and audit log are never touched; the runtime is wrapped to time every hook call and
record every fault the sandbox raises.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.contract.events import CATALOG, is_known_type
from rwq.plugins.eventbus.bus import DEFAULT_INBOX
from rwq.plugins.ops.seed import SeedJob, plant
from rwq.plugins.runtimes.base import (
    FaultKind,
    Hook,
    HostCall,
    PluginFault,
    PluginInstance,
    PluginRuntime,
    ResourceLimits,
)
from rwq.queue.events import Event

if TYPE_CHECKING:
    from rwq.plugins.engine.manager import PluginManager
    from rwq.plugins.package.bundle import Bundle

__all__ = [
    "CheckReport",
    "EventsFileError",
    "FaultRecord",
    "HookStats",
    "check_plugin",
    "isolated",
    "read_events",
]

Status = Literal["ok", "faulted", "invalid"]

RENDER_SIZE = (80, 24)
"""The panel size ``render`` is called with (columns, rows)."""


class EventsFileError(RwqError):
    """An events file line is not an event: names the file and the line."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


@dataclass
class HookStats:
    """Calls of one hook and how long they took in the sandbox."""

    calls: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        mean = self.total_ms / self.calls if self.calls else 0.0
        return {**asdict(self), "mean_ms": round(mean, 3)}


@dataclass(frozen=True)
class FaultRecord:
    """One fault of the plugin, contained by the host."""

    kind: str
    reason: str
    hook: str = ""


@dataclass
class CheckReport:
    """What ``rwq plugin check`` found; :meth:`to_dict` is its ``--json`` output."""

    status: Status
    plugin: dict[str, Any] = field(default_factory=dict)
    state: str = ""
    """The plugin's state when the last batch was handled (``active`` when all went well)."""
    load_ms: float = 0.0
    hooks: dict[str, HookStats] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    render: list[Any] | None = None
    """The last successful ``render`` output."""
    errors: list[str] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    resources: dict[str, float] = field(default_factory=dict)
    permissions: dict[str, list[str]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 ran cleanly, 1 faulted and contained, 2 bad input."""
        return {"ok": 0, "faulted": 1, "invalid": 2}[self.status]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hooks"] = {name: s.to_dict() for name, s in sorted(self.hooks.items())}
        return out


def read_events(path: Path) -> list[Event]:
    """The events of a JSON-lines file: one object per line with ``type`` and optional
    ``queue``, ``data``, ``ts`` (epoch ms), ``source`` and ``id``; blank lines are skipped.

    Raises:
        EventsFileError: the file cannot be read or a line is not such an object.
    """
    try:
        # JSON lines end at "\n" only: a raw U+2028 or NEL inside a string is no line end
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise EventsFileError(path, 0, f"cannot read: {exc}") from None
    events = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            events.append(_event(path, number, line))
    return events


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:24]} is too large for a number")
    return value


def _event(path: Path, number: int, line: str) -> Event:
    def bad(reason: str) -> EventsFileError:
        return EventsFileError(path, number, reason)

    try:
        raw = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise bad(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise bad(f"expected a JSON object, got {type(raw).__name__}")
    unknown = set(raw) - {"type", "queue", "data", "ts", "source", "id"}
    if unknown:
        raise bad(f"unknown fields {sorted(unknown)}")
    kind = raw.get("type")
    if not isinstance(kind, str) or not is_known_type(kind):
        raise bad(f"'type' must be a known event type (see docs/plugin-events.md), got {kind!r}")
    for name in ("queue", "source", "id"):
        if not isinstance(raw.get(name, ""), str):
            raise bad(f"{name!r} must be a string")
    data = raw.get("data", {})
    if not isinstance(data, dict):
        raise bad("'data' must be an object")
    ts = raw.get("ts", time.time() * 1000)
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 <= ts < 2**53:
        raise bad(f"'ts' must be a number of epoch milliseconds, got {str(ts)[:24]}")
    spec = CATALOG.get(kind)
    default_source = spec.source if spec is not None and "<" not in spec.source else "host"
    return Event(
        type=kind,
        ts=float(ts),
        source=raw.get("source") or default_source,
        queue=raw.get("queue", ""),
        data=data,
        id=raw.get("id") or f"check:{number}",
    )


# -- the observed runtime -------------------------------------------------------------------


class _Observer:
    """What the wrapped runtime saw: hook timings, faults, events handed over, resources."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hooks: dict[str, HookStats] = {}
        self.faults: list[FaultRecord] = []
        self.events_handed = 0
        self.peak_memory = 0
        self.cpu_seconds = 0.0
        self.changed = threading.Condition(self.lock)

    def fault(self, fault: FaultRecord) -> None:
        with self.lock:
            self.faults.append(fault)


class _ObservedInstance:
    def __init__(self, inner: PluginInstance, observer: _Observer) -> None:
        self.inner = inner
        self.name = inner.name
        self.observer = observer

    def exports(self) -> frozenset[Hook]:
        return self.inner.exports()

    def call(self, hook: Hook, argument: Any) -> Any:
        obs = self.observer
        start = time.perf_counter()
        failed = True
        try:
            result = self.inner.call(hook, argument)
            failed = False
            return result
        except PluginFault as fault:
            obs.fault(FaultRecord(fault.kind.value, fault.reason, fault.hook or hook.value))
            raise
        except Exception as exc:  # the manager turns it into a trap
            reason = f"{type(exc).__name__}: {exc}"
            obs.fault(FaultRecord(FaultKind.TRAP.value, reason, hook.value))
            raise
        finally:
            ms = (time.perf_counter() - start) * 1000
            memory = _safe(self.inner.memory_bytes)
            cpu = _safe(self.inner.cpu_seconds)
            with obs.changed:
                stats = obs.hooks.setdefault(hook.value, HookStats())
                stats.calls += 1
                stats.errors += failed
                stats.total_ms = round(stats.total_ms + ms, 3)
                stats.max_ms = round(max(stats.max_ms, ms), 3)
                obs.peak_memory = max(obs.peak_memory, int(memory))
                obs.cpu_seconds = max(obs.cpu_seconds, cpu)
                if hook is Hook.ON_EVENT and isinstance(argument, list):
                    obs.events_handed += len(argument)
                obs.changed.notify_all()

    def memory_bytes(self) -> int:
        return self.inner.memory_bytes()

    def cpu_seconds(self) -> float:
        return self.inner.cpu_seconds()

    def close(self) -> None:
        self.inner.close()


class _ObservedRuntime:
    def __init__(self, inner: PluginRuntime, observer: _Observer, plugin: str) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.observer = observer
        self.plugin = plugin  # only the checked plugin is observed, not its companions

    def load(
        self, name: str, entry_point: Path, limits: ResourceLimits, host_call: HostCall
    ) -> PluginInstance:
        try:
            instance = self.inner.load(name, entry_point, limits, host_call)
        except PluginFault as fault:
            if name == self.plugin:
                self.observer.fault(FaultRecord(fault.kind.value, fault.reason, "load"))
            raise
        return _ObservedInstance(instance, self.observer) if name == self.plugin else instance

    def close(self) -> None:
        self.inner.close()


def _safe(read: Any) -> float:
    try:
        return float(read())
    except Exception:
        return 0.0


def _runtime(kind: str, scratch: Path) -> PluginRuntime | None:
    """Only the runtime the plugin needs: a Starlark zygote or wasm engine costs to start."""
    if kind == "starlark":
        from rwq.plugins.runtimes.starlark import StarlarkRuntime

        return StarlarkRuntime()
    if kind == "wasm":
        from rwq.plugins.runtimes.wasm import WasmRuntime

        return WasmRuntime(cache_dir=scratch / "cache")
    return None


# -- the check --------------------------------------------------------------------------------


def check_plugin(
    settings: Settings,
    path: Path,
    *,
    grants: Sequence[str] = (),
    policy: Path | None = None,
    events: Sequence[Event] = (),
    batch_size: int = 100,
    timeout: float = 60.0,
    client: Any = None,
    companions: Sequence[Path] = (),
    seed: Sequence[SeedJob] = (),
    render_size: tuple[int, int] = RENDER_SIZE,
) -> CheckReport:
    """Load the plugin at ``path`` (directory or zip), feed it ``events`` in batches, render
    after each batch and report.

    Args:
        settings: where Redis is (the embedded Valkey unless ``redis_url``); the state dir
            is replaced by a temporary one.
        grants: permissions and level names granted to this bundle; whatever else it asks for
            and ``policy`` does not grant is denied.
        policy: a policy file applied to the pending permissions.
        batch_size: events per ``on_event`` call (1..inbox size).
        timeout: the longest wait for one batch to be handled (seconds).
        client: a Redis client to use instead of connecting with ``settings``.
        companions: other bundles loaded beside it (its dependencies), each granted what its
            manifest asks for; they get the events too, and are not reported on.
        seed: jobs and dead letters created (under the check's own key prefix) before the
            plugin loads, for its admin calls to see.
        render_size: the panel body size (columns, rows) ``render`` is called with.
    """
    from rwq.plugins.contract.permissions import expand
    from rwq.plugins.package.bundle import open_bundle
    from rwq.plugins.trust.policy import load_policy
    from rwq.plugins.trust.review import requested_grants

    if not 1 <= batch_size <= DEFAULT_INBOX:
        return CheckReport("invalid", errors=[f"--batch must be 1..{DEFAULT_INBOX}"])
    with tempfile.TemporaryDirectory(prefix="rwq-check-") as tmp:
        scratch = Path(tmp)
        try:
            expand(list(grants))
            if policy is not None:
                load_policy(policy)
            bundle = open_bundle(path, extract_dir=scratch / "extract")
            others = [open_bundle(p, extract_dir=scratch / "extract") for p in companions]
            if grants:  # never wider than the manifest asks: said before anything runs
                requested_grants(bundle.name, bundle.manifest.permissions, list(grants))
        except RwqError as exc:
            return CheckReport("invalid", errors=[str(exc)])
        m = bundle.manifest
        report = CheckReport(
            "ok",
            plugin={
                "name": bundle.name,
                "version": str(bundle.version),
                "runtime": m.runtime,
                "title": m.ui.panel_title or bundle.name,
                "path": str(path),
                "sha256": bundle.sha256,
            },
        )
        if client is None:
            from rwq.connection import connect

            try:
                client = connect(settings)
            except RwqError as exc:
                report.status = "invalid"
                report.errors.append(str(exc))
                return report
        runtime = _runtime(m.runtime, scratch)
        if runtime is None:
            report.status = "invalid"
            report.errors.append(f"no {m.runtime} runtime in this host")
            return report
        staged = [(bundle, path), *zip(others, companions, strict=True)]
        with isolated(settings, scratch, staged, client) as local:
            try:
                plant(client, local, list(seed))
            except RwqError as exc:
                report.status = "invalid"
                report.errors.append(f"seed: {exc}")
                return report
            _run(
                report, local, runtime, client, bundle, grants, policy, events, batch_size,
                timeout, others, render_size,
            )  # fmt: skip
        return report


@contextmanager
def isolated(
    settings: Settings, scratch: Path, bundles: Sequence[tuple[Bundle, Path]], client: Any
) -> Iterator[Settings]:
    """Settings for a host that sees only ``bundles`` (each opened from its path, copied to
    ``scratch/plugins``), keeps its state in ``scratch/state`` and its keys under a private
    prefix, whose keys are deleted on the way out."""
    plugins = scratch / "plugins"
    plugins.mkdir()
    for b, source in bundles:
        if b.kind == "zip":
            shutil.copyfile(source, plugins / f"{b.name}.zip")
        else:
            shutil.copytree(b.root, plugins / b.name, symlinks=True, dirs_exist_ok=True)
    # A private key prefix: the checked plugin's storage and queue calls never touch the
    # data of an installed plugin of the same name (or the user's queues).
    prefix = f"rwqcheck{os.getpid()}x{os.urandom(3).hex()}"
    local = settings.replace(state_dir=scratch / "state", plugin_dirs=str(plugins), prefix=prefix)
    try:
        yield local
    finally:
        for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
            client.delete(key)


def _run(
    report: CheckReport,
    settings: Settings,
    runtime: PluginRuntime,
    client: Any,
    bundle: Bundle,
    grants: Sequence[str],
    policy: Path | None,
    events: Sequence[Event],
    batch_size: int,
    timeout: float,
    companions: Sequence[Bundle] = (),
    render_size: tuple[int, int] = RENDER_SIZE,
) -> None:
    from rwq.host.build import HostOptions, build_host
    from rwq.plugins.engine.lifecycle import FaultPolicy, PluginState
    from rwq.plugins.trust import audit

    name = bundle.name
    observer = _Observer()
    options = HostOptions(
        policy_path=policy,
        reloads=False,
        feeds=False,  # only the events file reaches the plugin
        runtimes=lambda: {runtime.kind: _ObservedRuntime(runtime, observer, name)},
        fault_policy=FaultPolicy(backoff_initial=3600.0),  # no automatic reload mid-check
        max_batch=batch_size,
    )
    manager = build_host(settings, client, options).manager
    fed = taken = 0
    started = time.perf_counter()
    try:
        if grants:
            manager.grants.grant_requested(
                name, bundle.manifest.permissions, grants, version=str(bundle.version),
                bundle_hash=bundle.sha256, granted_by="rwq plugin check",
            )  # fmt: skip
        for other in companions:
            asked = [p.name for p in other.manifest.permissions]
            if asked and other.name != name:
                manager.grants.grant(
                    other.name, asked, version=str(other.version), bundle_hash=other.sha256,
                    granted_by="rwq plugin check --with",
                )  # fmt: skip
        manager.start()
        pending = [p for p in manager.pending_approvals() if p.plugin == name]
        if pending:  # what was neither granted nor pre-approved: run without it
            manager.deny(name, sorted(pending[0].review.pending), denied_by="rwq plugin check")
        report.load_ms = round((time.perf_counter() - started) * 1000, 3)
        if manager.state(name) is PluginState.ACTIVE:
            _render(manager, name, report, render_size)
            for first in range(0, len(events), batch_size):
                batch = events[first : first + batch_size]
                fed += len(batch)
                expected = manager.bus.publish_many(batch)
                taken += expected
                if not _handled(manager, name, observer, taken, timeout):
                    report.errors.append(f"events {first + 1}..{fed} not handled in {timeout:g}s")
                    break
                if manager.state(name) is not PluginState.ACTIVE:
                    break
                _render(manager, name, report, render_size)
            if _timers_fired(manager) and manager.state(name) is PluginState.ACTIVE:
                _render(manager, name, report, render_size)
        report.state = manager.state(name).value
        if manager.state(name) is not PluginState.ACTIVE:
            report.errors.append(f"{name} is {report.state}: {manager.reason(name)}")
            beside = {c.name for c in companions}
            missing = [
                d.name
                for d in bundle.manifest.dependencies
                if not d.optional and d.name not in beside
            ]
            if missing:
                report.errors.append(
                    f"load its dependencies beside it with --with PATH: {', '.join(missing)}"
                )
        review = manager.grants.review(
            name, list(bundle.manifest.permissions), str(bundle.version), bundle.sha256
        )
        report.permissions = {
            "granted": sorted(review.granted),
            "denied": sorted(review.denied),
            "pending": sorted(review.pending),
        }
    finally:
        manager.stop()
    snap = manager.status(name)
    report.hooks = dict(observer.hooks)
    report.faults = list(observer.faults)
    _reconcile(report.faults, snap.faults)
    report.events = {
        "read": len(events),
        "fed": fed,
        "routed": taken,
        "handed": observer.events_handed,
        "discarded": snap.events_discarded,
    }
    report.resources = {
        "peak_memory_bytes": observer.peak_memory,
        "cpu_ms": round(max(snap.cpu_seconds, observer.cpu_seconds) * 1000, 3),
    }
    records = audit.read(audit.audit_path(settings), plugin=name)
    report.audit = [_audit_entry(r.to_dict()) for r in records]
    if report.faults:
        report.status = "faulted"
    elif report.errors:
        # never active without a fault: refused to start, a dependency missing, no render
        report.status = "invalid" if snap.loads == 0 else "faulted"


TIMER_GRACE = 1.0
"""Seconds a check waits for the plugin's timers coming due (its first refresh, say)."""


def _timers_fired(manager: PluginManager) -> bool:
    """Let the timers due within :data:`TIMER_GRACE` of the events' end fire; whether any
    was due."""
    end = time.monotonic() + TIMER_GRACE
    fired = False
    while (due := manager.host_api.timers.next_due()) is not None and due <= end:
        fired = True
        time.sleep(max(0.0, due - time.monotonic()) + 0.05)
    if fired:
        time.sleep(0.1)  # the manager's timer thread hands the last one over
    return fired


def _handled(
    manager: PluginManager, name: str, observer: _Observer, taken: int, timeout: float
) -> bool:
    """Wait until every routed event was handed to ``on_event`` or discarded, or the plugin
    stopped running; False after ``timeout``."""
    from rwq.plugins.engine.lifecycle import PluginState

    deadline = time.monotonic() + timeout
    with observer.changed:
        while True:
            discarded = manager.status(name).events_discarded
            if observer.events_handed + discarded >= taken:
                return True
            if manager.state(name) is not PluginState.ACTIVE and not manager.bus.pending(name):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            observer.changed.wait(min(left, 0.05))


def _render(manager: PluginManager, name: str, report: CheckReport, size: tuple[int, int]) -> None:
    result = manager.render(name, *size)
    if result.error is None:
        report.render = result.elements
    elif result.error not in report.errors:
        report.errors.append(f"render: {result.error}")


def _reconcile(faults: list[FaultRecord], counted: dict[str, int]) -> None:
    """Add the faults the host counted but the sandbox did not raise (results the host
    refused, such as an ``on_event`` answer that is not ``{"changed": bool}``)."""
    for kind, n in sorted(counted.items()):
        seen = sum(1 for f in faults if f.kind == kind)
        for _ in range(n - seen):
            faults.append(FaultRecord(kind, "refused by the host (see errors)"))


def _audit_entry(record: dict[str, Any]) -> dict[str, Any]:
    record.pop("time", None)
    return record


def grant_names(values: Iterable[str]) -> list[str]:
    """``--grant`` values, each possibly comma-separated, as one list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
