"""Per-plugin metrics: calls and errors per hook, call latency, CPU, memory and events, for
the TUI's plugin screen (:class:`PluginSnapshot`) and Prometheus (:class:`PluginCollector`).

Recording a call costs a counter increment and one slot of a fixed ring of latencies; the
quantiles are computed only when someone looks.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.trust.signing import SignatureStatus

LATENCY_WINDOW = 1024
"""Latest call durations kept per plugin for the quantiles."""
HOOK_WINDOW = 128
"""Latest call durations kept per hook of a plugin, for its own quantiles."""


class LatencyWindow:
    """The durations of the latest ``size`` calls, with their total since the start."""

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        self._ring = [0.0] * size
        self._next = 0
        self.count = 0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self._ring[self._next] = seconds
        self._next = (self._next + 1) % len(self._ring)
        self.count += 1
        self.total += seconds

    def quantiles(self, *qs: float) -> tuple[float, ...]:
        """The ``qs`` quantiles (nearest rank) of the window; zeros before the first call."""
        held = sorted(self._ring[: min(self.count, len(self._ring))])
        if not held:
            return tuple(0.0 for _ in qs)
        last = len(held) - 1
        return tuple(held[min(last, max(0, round(q * last)))] for q in qs)


class PluginMetrics:
    """What one plugin cost and how it behaved; survives reloads of the plugin. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        """Faults by :class:`~rwq.plugins.runtimes.base.FaultKind`."""
        self.latency = LatencyWindow()
        self.hooks: dict[str, LatencyWindow] = {}
        self.discarded = 0
        """Events taken from the inbox but not handed over (revoked, disabled, unloaded)."""
        self.cpu_retired = 0.0
        """CPU seconds of instances already closed."""
        self.cpu_live = 0.0
        self.memory = 0
        self.loads = 0
        self.disables = 0

    def record(self, hook: str, seconds: float, *, failed: bool = False) -> None:
        with self._lock:
            self.calls[hook] += 1
            if failed:
                self.errors[hook] += 1
            self.latency.add(seconds)
            window = self.hooks.get(hook)
            if window is None:
                window = self.hooks[hook] = LatencyWindow(HOOK_WINDOW)
            window.add(seconds)

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def discard(self, events: int) -> None:
        with self._lock:
            self.discarded += events

    def count_load(self) -> None:
        with self._lock:
            self.loads += 1

    def count_disable(self) -> None:
        with self._lock:
            self.disables += 1

    def sample(self, cpu_seconds: float, memory_bytes: int) -> None:
        """The live instance's CPU time and memory now."""
        with self._lock:
            self.cpu_live = cpu_seconds
            self.memory = memory_bytes

    def retire(self, cpu_seconds: float) -> None:
        """The live instance closed having used ``cpu_seconds``."""
        with self._lock:
            self.cpu_retired += cpu_seconds
            self.cpu_live = 0.0
            self.memory = 0

    def view(self) -> dict[str, Any]:
        """The :class:`PluginSnapshot` fields this object holds, read consistently."""
        with self._lock:
            p50, p99 = self.latency.quantiles(0.5, 0.99)
            return {
                "calls": dict(self.calls),
                "errors": dict(self.errors),
                "faults": dict(self.faults),
                "latency_p50": p50,
                "latency_p99": p99,
                "latency_count": self.latency.count,
                "latency_sum": self.latency.total,
                "hook_latency": {h: w.quantiles(0.5, 0.99) for h, w in self.hooks.items()},
                "cpu_seconds": self.cpu_retired + self.cpu_live,
                "memory_bytes": self.memory,
                "events_discarded": self.discarded,
                "loads": self.loads,
                "disables": self.disables,
            }


@dataclass(frozen=True)
class PluginSnapshot:
    """One plugin's state and figures at one moment (the TUI's plugin manager screen)."""

    name: str
    version: str
    runtime: str
    state: PluginState
    reason: str
    calls: dict[str, int] = field(default_factory=dict)
    """Calls per hook."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed calls per hook."""
    faults: dict[str, int] = field(default_factory=dict)
    """Faults per kind."""
    latency_p50: float = 0.0
    """Seconds, over the latest calls of every hook."""
    latency_p99: float = 0.0
    latency_count: int = 0
    latency_sum: float = 0.0
    hook_latency: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Per hook: the p50 and p99 of its latest calls, in seconds."""
    cpu_seconds: float = 0.0
    """CPU time used by every instance of the plugin so far."""
    memory_bytes: int = 0
    events_delivered: int = 0
    events_dropped: int = 0
    """Lost to a full inbox."""
    events_coalesced: int = 0
    events_throttled: int = 0
    cpu_throttled: bool = False
    """Over its ``max_cpu`` budget: events are held back (coalesced) until it is under."""
    throttle_note: str = ""
    """While throttled: the CPU it used, the window, its budget and the setting."""
    events_discarded: int = 0
    """Taken from the inbox but not handed over (revoked, disabled)."""
    events_queued: int = 0
    consecutive_faults: int = 0
    loads: int = 0
    disables: int = 0
    retry_in: float | None = None
    """Seconds until the automatic reload of a plugin disabled by faults."""
    dirty: bool = False
    signature: SignatureStatus | None = None
    """Its bundle's signature: signed by whom (trusted or not), unsigned or invalid; None
    when ``plugin_signatures`` is off."""
    bundle_hash: str = ""
    """The SHA-256 of the bundle it runs (or was last loaded from)."""

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out


class PluginCollector:
    """A Prometheus collector of every plugin's figures; register it on a registry
    (``registry.register(manager.collector())``) and serve that registry, e.g. with
    ``prometheus_client.start_http_server(port, registry=registry)``.

    Args:
        snapshots: returns the current snapshots (``PluginManager.snapshot``).
    """

    def __init__(self, snapshots: Callable[[], Iterable[PluginSnapshot]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        snaps = list(self._snapshots())
        calls = CounterMetricFamily(
            "rwq_plugin_calls", "Calls into the plugin, by hook", labels=["plugin", "hook"]
        )
        errors = CounterMetricFamily(
            "rwq_plugin_errors", "Failed calls into the plugin, by hook", labels=["plugin", "hook"]
        )
        latency = Metric(
            "rwq_plugin_latency_seconds", "Duration of calls into the plugin", "summary"
        )
        cpu = GaugeMetricFamily(
            "rwq_plugin_cpu_seconds", "CPU time the plugin used so far", labels=["plugin"]
        )
        memory = GaugeMetricFamily(
            "rwq_plugin_memory_bytes", "Memory the plugin holds now", labels=["plugin"]
        )
        dropped = CounterMetricFamily(
            "rwq_plugin_dropped_events",
            "Events that did not reach the plugin, by reason",
            labels=["plugin", "reason"],
        )
        state = GaugeMetricFamily(
            "rwq_plugin_state", "1 for the plugin's current state", labels=["plugin", "state"]
        )
        for s in snaps:
            for hook, n in sorted(s.calls.items()):
                calls.add_metric([s.name, hook], n)
            for hook, n in sorted(s.errors.items()):
                errors.add_metric([s.name, hook], n)
            for q, value in (("0.5", s.latency_p50), ("0.99", s.latency_p99)):
                latency.add_sample(
                    "rwq_plugin_latency_seconds", {"plugin": s.name, "quantile": q}, value
                )
            plugin = {"plugin": s.name}
            latency.add_sample("rwq_plugin_latency_seconds_count", plugin, s.latency_count)
            latency.add_sample("rwq_plugin_latency_seconds_sum", plugin, s.latency_sum)
            cpu.add_metric([s.name], s.cpu_seconds)
            memory.add_metric([s.name], s.memory_bytes)
            for reason, n in (
                ("overflow", s.events_dropped),
                ("coalesced", s.events_coalesced),
                ("throttled", s.events_throttled),
                ("discarded", s.events_discarded),
            ):
                dropped.add_metric([s.name, reason], n)
            for st in PluginState:
                state.add_metric([s.name, st.value], 1.0 if st is s.state else 0.0)
        yield from (calls, errors, latency, cpu, memory, dropped, state)
