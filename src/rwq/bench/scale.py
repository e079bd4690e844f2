"""The scale scenario of ``rwq bench plugins``: many Starlark plugins subscribed to ``job.*``
while real queue traffic makes about 1,000 job events a second."""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rwq.bench.queue import _percentile, bench_target, noop
from rwq.config import Settings
from rwq.connection import connect
from rwq.errors import RwqError
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.runtimes.base import Hook, HostCall, PluginInstance, ResourceLimits
from rwq.plugins.runtimes.sandbox import cpu_seconds
from rwq.procfs import thread_cpu

__all__ = ["run_scale", "run_scale_bench"]

QUEUE = "bench.scale"
EVENTS_PER_JOB = 3
"""``job.enqueued``, ``job.started``, ``job.completed``."""
EVENTS_MAXLEN = 10_000_000
"""The run's stream cap: high enough that every event published stays countable."""
LOAD_START_TIMEOUT = 30.0
DRAIN_TIMEOUT = 20.0
"""Longest wait, after the load stops, for the plugins to take what is still queued."""
DRAIN_QUIET = 1.5
"""The drain is over once no plugin was handed an event for this long."""

PLUGIN_SOURCE = """\
# counts the events it receives by type (like sdk/starlark/hello) and renders the total

def initialize(config):
    state.set("counts", {})
    state.set("total", 0)
    return None

def on_event(events):
    counts = state.get("counts", {})
    for event in events:
        name = event.get("type") or "(unknown)"
        counts[name] = counts.get(name, 0) + 1
    state.set("counts", counts)
    state.set("total", state.get("total", 0) + len(events))
    return {"changed": len(events) > 0}

def render(size):
    counts = state.get("counts", {})
    return [
        {"type": "text", "text": "%d events" % state.get("total", 0)},
        {"type": "table", "columns": ["type", "count"],
         "rows": [[name, counts[name]] for name in sorted(counts)]},
    ]
"""

MANIFEST = """\
name: {name}
version: 1.0.0
api_version: v1
description: rwq bench scale plugin {index}
runtime: starlark
entry_point: main.star
permissions:
  - events.subscribe
resources:
  max_memory: 16MB
  max_cpu: {max_cpu}
  timeout: 1s
ui:
  panel_title: scale {index}
events:
  - type: "job.*"
"""
"""The SDK template's resources (16 MB, 1 s a call); ``max_cpu`` as asked (5% there)."""

POLICY = """\
plugins:
  "*":
    grant: [events.subscribe]
"""


def write_plugins(root: Path, count: int, max_cpu: str) -> list[str]:
    """``count`` scale plugins under ``root``; their names."""
    names = []
    for index in range(count):
        name = f"scale-{index:03d}"
        folder = root / name
        folder.mkdir(parents=True)
        manifest = MANIFEST.format(name=name, index=index, max_cpu=max_cpu)
        (folder / "manifest.yaml").write_text(manifest, encoding="utf-8")
        (folder / "main.star").write_text(PLUGIN_SOURCE, encoding="utf-8")
        names.append(name)
    return names


# -- what the host hands each plugin ------------------------------------------------------------


class _Recorded:
    """A plugin instance that notes, per ``on_event`` call, the batch size, the call's time and
    how old each event is when it is handed over (now minus its stream entry's time: one clock
    read per call and a subtraction per event); everything else goes to the instance."""

    def __init__(self, inner: PluginInstance) -> None:
        self.inner = inner
        self.name = inner.name
        self.events = 0
        self.lags_ms = array("d")
        self.batches = array("l")
        self.call_ms = array("d")
        self.last_at = 0.0

    def exports(self) -> frozenset[Hook]:
        return self.inner.exports()

    def call(self, hook: Hook, argument: Any) -> Any:
        if hook != Hook.ON_EVENT or not isinstance(argument, list):
            return self.inner.call(hook, argument)
        now_ms = time.time() * 1000
        self.lags_ms.extend([now_ms - e["ts"] for e in argument])
        start = time.perf_counter()
        try:
            return self.inner.call(hook, argument)
        finally:
            end = time.perf_counter()
            self.call_ms.append((end - start) * 1000)
            self.batches.append(len(argument))
            self.events += len(argument)
            self.last_at = end

    def memory_bytes(self) -> int:
        return self.inner.memory_bytes()

    def cpu_seconds(self) -> float:
        return self.inner.cpu_seconds()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # throttled, cpu_share, start_budget, pid
        return getattr(self.inner, name)


class _RecordingRuntime:
    """The Starlark runtime, its instances wrapped in :class:`_Recorded`."""

    kind = "starlark"

    def __init__(self) -> None:
        from rwq.plugins.runtimes.starlark import StarlarkRuntime

        self.inner = StarlarkRuntime()
        self.instances: dict[str, _Recorded] = {}

    def load(
        self, name: str, entry_point: Path, limits: ResourceLimits, host_call: HostCall
    ) -> _Recorded:
        instance = _Recorded(self.inner.load(name, entry_point, limits, host_call))
        self.instances[name] = instance
        return instance

    def close(self) -> None:
        self.inner.close()


# -- the load: a producer and a worker in a process of their own ---------------------------------


def load_main() -> None:
    """Entry point of the load process: ``python -c ... CONFIG_JSON``. Prints ``go`` once
    the worker runs, paces jobs for the configured seconds, prints ``done`` once the worker
    has run them, then its counts."""
    from rwq.queue.broker import Broker
    from rwq.queue.producer import Producer
    from rwq.queue.worker import Worker, WorkerOptions

    config = json.loads(sys.argv[1])
    settings = Settings(
        redis_url=config["redis_url"],
        prefix=config["prefix"],
        state_dir=Path(config["state_dir"]),
        persistence=False,
        events_maxlen=EVENTS_MAXLEN,
    )
    client = connect(settings)
    broker = Broker(client, settings)
    producer = Producer(broker)
    worker = Worker(broker, [QUEUE], {"*": noop}, WorkerOptions(prefetch=50, idle_wait=0.05))
    runner = threading.Thread(target=worker.run, name="rwq-bench-worker", daemon=True)
    runner.start()
    print("go", flush=True)
    jobs_per_s = config["events_per_s"] / EVENTS_PER_JOB
    tick = 0.01
    enqueued = 0
    started = time.monotonic()
    end = started + config["seconds"]
    while (now := time.monotonic()) < end:
        due = math.floor((now - started) * jobs_per_s) - enqueued
        if due > 0:
            producer.enqueue_many(QUEUE, [{"kind": "scale", "i": enqueued + i} for i in range(due)])
            enqueued += due
        time.sleep(tick)
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    while worker.processed < enqueued and time.monotonic() < deadline:
        time.sleep(0.01)
    print("done", flush=True)
    worker.stop()
    runner.join(15)
    print(json.dumps({"enqueued": enqueued, "processed": worker.processed, "seconds": elapsed}))
    client.close()


@contextlib.contextmanager
def _load(target: Settings, state: Path, events_per_s: float, seconds: float) -> Iterator[Any]:
    config = {
        "redis_url": target.redis_url,
        "prefix": target.prefix,
        "state_dir": str(state),
        "events_per_s": events_per_s,
        "seconds": seconds,
    }
    code = "from rwq.bench.scale import load_main; load_main()"
    child = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


# -- the scenario -------------------------------------------------------------------------------


def run_scale(
    settings: Settings,
    *,
    plugins: int = 100,
    events_per_s: float = 1000.0,
    seconds: float = 10.0,
    max_cpu: str = "5%",
) -> dict[str, Any]:
    """Run ``plugins`` Starlark plugins on ``job.*`` while a load makes ``events_per_s`` job
    events a second for ``seconds``; the figures (``settings`` must point at the server to
    use, under a private prefix: see :func:`~rwq.bench.queue.bench_target`).

    A load process (a producer pacing jobs and a worker running them: ``job.enqueued``,
    ``job.started`` and ``job.completed`` each) writes to one queue's stream; this process
    runs a real plugin manager whose stream feed reads that stream into the bus. Each plugin
    counts the events it sees in its ``state`` and renders the count, so the share dropped is
    ``1 - received / (published x plugins)`` from what the plugins saw, checked against the
    host's own counters (bus drops, events held back while over ``max_cpu``). The delivery
    latency is each event's age when ``on_event`` is called (:class:`_Recorded`). Host CPU is
    this process's (every thread; the load runs elsewhere), sandbox CPU the sum over the
    plugins' processes; the whole machine's busy time (``machine_cpu_pct``, 100 a core) is
    reported beside them, so a run on a shared machine can be told from a quiet one.
    """
    from rwq.plugins.engine.manager import PluginManager

    if plugins < 1 or events_per_s <= 0 or seconds <= 0:
        raise RwqError("scale: plugins, events_per_s and seconds must be positive")
    if not settings.redis_url:  # else each process would start an embedded server of its own
        raise RwqError("scale: needs a server of its own (redis_url; see bench_target)")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rwq-bench-scale-") as tmp:
        work = Path(tmp)
        names = write_plugins(work / "plugins", plugins, max_cpu)
        policy = work / "policy.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        here = settings.replace(
            plugin_dirs=str(work / "plugins"), state_dir=work / "state", events_maxlen=EVENTS_MAXLEN
        )
        client = connect(here)
        keys_prefix = f"{here.prefix}:*"
        runtime = _RecordingRuntime()
        manager = PluginManager(here, {"starlark": runtime}, client, policy_path=policy)
        try:
            from rwq.queue.broker import Broker

            broker = Broker(client, here)
            broker.register_queues([QUEUE])  # followed from its start, not found a second late
            stream = broker.keys.queue(QUEUE).events
            load_start = time.perf_counter()
            manager.start()
            not_active = [n for n in names if manager.state(n) is not PluginState.ACTIVE]
            if not_active:
                first = not_active[0]
                raise RwqError(
                    f"scale: {len(not_active)} plugins did not start, {first}: "
                    f"{manager.reason(first)}"
                )
            load_s = time.perf_counter() - load_start
            with _load(here, work / "load-state", events_per_s, seconds) as child:
                assert child.stdout is not None
                if child.stdout.readline().strip() != "go":
                    raise RwqError(f"scale: the load did not start: {child.stderr.read()[-500:]}")
                start = _Mark(runtime, child.pid)
                child.stdout.readline()  # "done": the jobs ran
                end = _Mark(runtime, child.pid)
                tail = child.stdout.read()
                child.wait()
                if child.returncode != 0:
                    raise RwqError(f"scale: the load failed: {child.stderr.read()[-500:]}")
            load = json.loads(tail.strip().splitlines()[-1])
            published = int(client.xlen(stream))
            if not published:  # the load ran against another server than the one read here
                raise RwqError(
                    f"scale: the load processed {load.get('processed', 0)} jobs but no event "
                    f"reached {stream}: give the scenario a server of its own (bench_target)"
                )
            drain_s = _drain(runtime, published)
            received = {n: _rendered_total(manager, n) for n in names}
            snapshot = {s.name: s for s in manager.snapshot() if s.name in received}
        finally:
            manager.stop()
            for key in client.scan_iter(match=keys_prefix, count=1000):
                client.delete(key)
            client.close()
    figures = _figures(start, end, runtime, received, snapshot, published, load)
    figures.update(
        plugins=plugins,
        events_per_s_offered=events_per_s,
        plugin_max_cpu=max_cpu,
        load_plugins_s=round(load_s, 2),
        drain_s=round(drain_s, 2),
        duration_s=round(time.perf_counter() - began, 2),
    )
    return figures


def _drain(runtime: _RecordingRuntime, published: int) -> float:
    """Wait until every plugin was handed every event, or none was for a while."""
    started = time.perf_counter()
    deadline = started + DRAIN_TIMEOUT
    while time.perf_counter() < deadline:
        instances = list(runtime.instances.values())
        if all(i.events >= published for i in instances):
            break
        last = max((i.last_at for i in instances), default=0.0)
        if time.perf_counter() - last > DRAIN_QUIET:
            break
        time.sleep(0.05)
    return time.perf_counter() - started


def _rendered_total(manager: Any, name: str) -> int:
    """The count the plugin itself keeps, read from its panel's first line."""
    elements = manager.render(name, 80, 24).elements
    text = str(elements[0].get("text", "")) if elements else ""
    try:
        return int(text.split()[0])
    except (IndexError, ValueError):
        raise RwqError(f"scale: {name} rendered {text!r}, not its count") from None


class _Mark:
    """CPU seconds at one moment: this process (by thread), the sandboxes, the load."""

    def __init__(self, runtime: _RecordingRuntime, load_pid: int) -> None:
        self.at = time.perf_counter()
        self.host = time.process_time()
        self.threads = thread_cpu()
        pids = [getattr(i, "pid", 0) for i in runtime.instances.values()]
        self.sandboxes = sum(cpu_seconds(pid) or 0.0 for pid in pids)
        self.load = cpu_seconds(load_pid) or 0.0
        self.machine = _machine_busy()


def _machine_busy() -> float:
    """CPU seconds every core of the machine has been busy (``/proc/stat``; 0 elsewhere):
    what else ran meanwhile shows as the machine's figure minus this run's."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _figures(
    start: _Mark,
    end: _Mark,
    runtime: _RecordingRuntime,
    received: dict[str, int],
    snapshot: dict[str, Any],
    published: int,
    load: dict[str, Any],
) -> dict[str, Any]:
    window = end.at - start.at
    plugins = len(received)
    counts = sorted(received.values())
    expected = published * plugins
    total = sum(counts)
    instances = list(runtime.instances.values())
    lags = [x for i in instances for x in i.lags_ms]
    calls = [x for i in instances for x in i.call_ms]
    batches = [float(x) for i in instances for x in i.batches]
    handed = sum(i.events for i in instances)
    bus_dropped = sum(s.events_dropped for s in snapshot.values())
    held_back = sum(s.events_discarded for s in snapshot.values())
    threads = {n: end.threads[n] - start.threads.get(n, 0.0) for n in end.threads}
    return {
        "window_s": round(window, 2),
        "events_published": published,
        "events_per_s_published": round(published / max(load["seconds"], 1e-9), 1),
        "jobs": {"enqueued": load["enqueued"], "processed": load["processed"]},
        "delivered_per_plugin": {
            "min": counts[0] if counts else 0,
            "mean": round(statistics.fmean(counts), 1) if counts else 0.0,
            "max": counts[-1] if counts else 0,
        },
        "dropped_pct": round(100 * (1 - total / expected), 2) if expected else 0.0,
        "host_counters": {
            "handed_to_on_event": handed,
            "bus_inbox_dropped": bus_dropped,
            "held_back_dropped": held_back,
            "still_queued": sum(s.events_queued for s in snapshot.values()),
            "unaccounted": expected - handed - bus_dropped - held_back,
            "cpu_throttled_plugins": sum(bool(s.cpu_throttled) for s in snapshot.values()),
            "faults": sum(s.errors_total for s in snapshot.values()),
        },
        "host_cpu_pct": round(100 * (end.host - start.host) / window, 1),
        "host_cpu_pct_by_thread": {
            name: round(100 * used / window, 1)
            for name, used in sorted(threads.items(), key=lambda item: -item[1])
            if used > 0
        },
        "sandbox_cpu_pct": round(100 * (end.sandboxes - start.sandboxes) / window, 1),
        "load_cpu_pct": round(100 * (end.load - start.load) / window, 1),
        "machine_cpu_pct": round(100 * (end.machine - start.machine) / window, 1),
        "delivery_ms": _quantiles(lags),
        "on_event_calls": len(calls),
        "batch_events": {
            "mean": round(statistics.fmean(batches), 1) if batches else 0.0,
            "p50": _percentile(batches, 0.5) if batches else 0,
            "max": max(batches, default=0),
        },
        "on_event_ms": _quantiles(calls),
    }


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(ordered[len(ordered) // 2], 2),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "max": round(ordered[-1], 2),
    }


def run_scale_bench(
    settings: Settings,
    *,
    plugins: Sequence[int] = (100, 200),
    events_per_s: float = 1000.0,
    seconds: float = 10.0,
    max_cpu: str = "5%",
) -> dict[str, Any]:
    """The scale scenario once per plugin count, each on the given target; a count that
    cannot run is reported as its error."""
    result: dict[str, Any] = {
        "subscription": "job.*",
        "runtime": "starlark",
        "cpus": os.cpu_count(),
    }
    for count in plugins:
        try:
            result[f"plugins_{count}"] = run_scale(
                settings, plugins=count, events_per_s=events_per_s, seconds=seconds,
                max_cpu=max_cpu,
            )  # fmt: skip
        except (RwqError, OSError) as exc:
            result[f"plugins_{count}"] = {"error": str(exc)}
    return result


if __name__ == "__main__":
    with bench_target(Settings.load()) as (target, _):
        counts = [int(n) for n in sys.argv[1:]] or [100]
        print(json.dumps(run_scale_bench(target, plugins=counts), indent=2))
