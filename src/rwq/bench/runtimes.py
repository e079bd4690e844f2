"""The plugin runtimes' figures for ``rwq bench plugins``: load times, ``on_event``
throughput, memory per plugin and many plugins at once, for the WASM runtime (the C SDK's
``hello``, built with ``sdk/c/build.sh`` into a temporary directory) and the Starlark runtime
(``sdk/starlark/hello``), every host call answered by a no-op.

Every instance, runtime, sandbox and zygote is closed before a section returns; each
runtime's section ends with ``all_closed``: whether nothing of it is left running.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from rwq.plugins.contract.events import local_event
from rwq.plugins.runtimes.base import Hook, PluginInstance, ResourceLimits
from rwq.plugins.runtimes.sandbox import private_bytes

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]
SDK = ROOT / "sdk"
LIMITS = ResourceLimits(max_memory_bytes=16 << 20, timeout_s=1.0, max_cpu_percent=100.0)
"""The hello manifests' ``max_memory: 16MB`` and ``timeout: 1s``; no CPU throttle."""
CONFIG = {"greeting": "hello"}
EVENT_TYPES = ("job.enqueued", "job.started", "job.completed", "job.failed")


def _noop_host(plugin: str, function: str, args: Any) -> Any:
    return None


def _events(n: int) -> list[dict[str, Any]]:
    """A batch of ``n`` job events as a plugin receives them."""
    return [
        local_event(
            EVENT_TYPES[i % len(EVENT_TYPES)],
            {"job_id": f"j{i:08d}", "attempt": 1, "duration_ms": 12.5},
            source="queue",
            queue="bench",
        ).to_dict()
        for i in range(n)
    ]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _median_ms(samples_s: list[float]) -> float:
    return _ms(statistics.median(samples_s))


def _timed(call: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def _rss_bytes() -> int:
    """This process's resident memory (``VmRSS``)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _epoch_threads() -> int:
    return sum(t.name == "rwq-wasm-epoch" and t.is_alive() for t in threading.enumerate())


def _throughput(instance: PluginInstance, batch: int, seconds: float) -> dict[str, Any]:
    """Calls of ``on_event`` with ``batch`` events each for about ``seconds``."""
    events = _events(batch)
    for _ in range(20):  # warm up
        instance.call(Hook.ON_EVENT, events)
    calls = 0
    latencies: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    while True:
        t0 = time.perf_counter()
        instance.call(Hook.ON_EVENT, events)
        t1 = time.perf_counter()
        latencies.append(t1 - t0)
        calls += 1
        if t1 >= end:
            break
    elapsed = time.perf_counter() - start
    return {
        "batch_events": batch,
        "calls": calls,
        "events_per_s": round(calls * batch / elapsed),
        "calls_per_s": round(calls / elapsed),
        "call_p50_ms": _median_ms(latencies),
    }


def _on_event(instance: PluginInstance, seconds: float) -> dict[str, Any]:
    return {
        "batch_100": _throughput(instance, 100, seconds),
        "batch_1": _throughput(instance, 1, seconds),
    }


def _concurrent(
    load: Callable[[int], PluginInstance], plugins: int, threads: int
) -> dict[str, Any]:
    """Load ``plugins`` plugins at once (``threads`` at a time), deliver one batch of 100
    events to each at once, then close them all."""
    events = _events(100)
    loaded: list[PluginInstance] = []
    answered = 0
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            loaded.extend(pool.map(load, range(plugins)))
            t_loaded = time.perf_counter()

            def deliver(instance: PluginInstance) -> bool:
                return bool(instance.call(Hook.ON_EVENT, events) == {"changed": True})

            answered = sum(pool.map(deliver, loaded))
            t_answered = time.perf_counter()
    finally:
        t_close = time.perf_counter()
        for instance in loaded:
            instance.close()
        t_closed = time.perf_counter()
    return {
        "plugins": plugins,
        "threads": threads,
        "batch_events": len(events),
        "answered": answered,
        "all_answered": answered == plugins,
        "load_all_ms": _ms(t_loaded - start),
        "deliver_all_ms": _ms(t_answered - t_loaded),
        "total_ms": _ms(t_answered - start),
        "close_all_ms": _ms(t_closed - t_close),
    }


# -- WASM -----------------------------------------------------------------------------------


def wasm_memory(wasm: Path, plugins: int) -> dict[str, Any]:
    """RSS delta per instance of loading ``plugins`` instances of ``wasm`` into one runtime
    (its module already compiled and one instance warmed up), and after one ``on_event``
    batch of 100 events to each. Meant for a process of its own: see
    :func:`_wasm_memory_in_child`."""
    from rwq.plugins.runtimes.wasm import WasmRuntime

    rt = WasmRuntime()
    try:
        events = _events(100)
        rt.load("warm", wasm, LIMITS, _noop_host).call(Hook.ON_EVENT, events)
        gc.collect()
        rss0, private0 = _rss_bytes(), private_bytes(os.getpid())
        many = [rt.load(f"hello{i}", wasm, LIMITS, _noop_host) for i in range(plugins)]
        gc.collect()
        rss1, private1 = _rss_bytes(), private_bytes(os.getpid())
        for instance in many:
            instance.call(Hook.ON_EVENT, events)
        gc.collect()
        rss2 = _rss_bytes()
        linear = statistics.median(i.memory_bytes() for i in many)
    finally:
        rt.close()
    return {
        "plugins": plugins,
        "measured_in": "fresh process",
        "rss_delta_per_plugin_bytes": round((rss1 - rss0) / plugins),
        "private_delta_per_plugin_bytes": round((private1 - private0) / plugins),
        "rss_delta_per_plugin_after_on_event_bytes": round((rss2 - rss0) / plugins),
        "linear_memory_per_plugin_bytes": round(linear),
    }


def _wasm_memory_in_child(wasm: Path, plugins: int) -> dict[str, Any]:
    code = (
        "import json, sys; from pathlib import Path; from rwq.bench.runtimes import wasm_memory;"
        "print(json.dumps(wasm_memory(Path(sys.argv[1]), int(sys.argv[2]))))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, str(wasm), str(plugins)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if child.returncode != 0:
        return {"error": child.stderr.strip()[-500:]}
    measured: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return measured


@contextmanager
def _built_hello() -> Iterator[Path]:
    """``sdk/c/hello`` built with ``sdk/c/build.sh`` in a temporary copy."""
    if shutil.which("clang") is None:
        raise RuntimeError("clang is not installed")
    if not (SDK / "c" / "build.sh").is_file():
        raise RuntimeError(f"no C SDK at {SDK / 'c'} (not a source checkout)")
    with tempfile.TemporaryDirectory(prefix="rwq-bench-wasm-") as tmp:
        plugin = Path(tmp) / "hello"
        shutil.copytree(SDK / "c" / "hello", plugin)
        out = plugin / "main.wasm"
        build = subprocess.run(
            [str(SDK / "c" / "build.sh"), str(plugin), str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if build.returncode != 0:
            raise RuntimeError(f"build.sh failed: {build.stderr.strip()[-500:]}")
        yield out


def bench_wasm(
    *, loads: int = 5, memory_plugins: int = 100, concurrent: int = 200, seconds: float = 1.0
) -> dict[str, Any]:
    """The WASM runtime's figures with the C SDK's hello plugin."""
    from rwq.plugins.runtimes.wasm import WasmRuntime

    section_start = time.perf_counter()
    with _built_hello() as wasm, tempfile.TemporaryDirectory(prefix="rwq-bench-cache-") as tmp:
        result: dict[str, Any] = {"plugin": "sdk/c/hello", "module_bytes": wasm.stat().st_size}
        runtimes: list[WasmRuntime] = []

        def runtime(cache: Path | None) -> WasmRuntime:
            rt = WasmRuntime(cache_dir=cache)
            runtimes.append(rt)
            return rt

        try:
            # cold: a new runtime and an empty cache directory each time (compiles)
            cold: list[float] = []
            cold_sources: set[str] = set()
            for i in range(loads):
                rt = runtime(Path(tmp) / f"cold{i}")
                start = time.perf_counter()
                instance = rt.load("hello", wasm, LIMITS, _noop_host)
                cold.append(time.perf_counter() - start)
                cold_sources.add(instance.load_source)
                rt.close()
            # cached: a new runtime each time, reading the same disk cache
            shared = Path(tmp) / "cold0"
            cached: list[tuple[float, float]] = []
            cached_sources: set[str] = set()
            for _ in range(loads):
                start = time.perf_counter()
                rt = runtime(shared)
                created = time.perf_counter()
                instance = rt.load("hello", wasm, LIMITS, _noop_host)
                cached.append((created - start, time.perf_counter() - created))
                cached_sources.add(instance.load_source)
                rt.close()
            # warm: the same runtime again (module in memory): the instance alone
            rt = runtime(shared)
            rt.load("hello", wasm, LIMITS, _noop_host)
            warm = [
                _timed(lambda: rt.load("hello", wasm, LIMITS, _noop_host))[0] for _ in range(20)
            ]
            for instance in rt.instances():
                instance.close()
            result["load"] = {
                "cold_load_ms": _median_ms(cold),
                "cold_load_source": sorted(cold_sources),
                "cached_load_ms": _median_ms([load for _, load in cached]),
                "cached_load_source": sorted(cached_sources),
                "new_runtime_ms": _median_ms([create for create, _ in cached]),
                "in_memory_load_ms": _median_ms(warm),
                "samples": loads,
            }

            # on_event throughput of one plugin
            instance = rt.load("hello", wasm, LIMITS, _noop_host)
            instance.call(Hook.INITIALIZE, CONFIG)
            result["on_event"] = _on_event(instance, seconds)
            instance.close()

            # memory: in a fresh process, where freed heap cannot hide what instances take
            result["memory"] = _wasm_memory_in_child(wasm, memory_plugins)

            # many at once, in one runtime
            result["concurrent"] = _concurrent(
                lambda i: rt.load(f"hello{i}", wasm, LIMITS, _noop_host), concurrent, 16
            )
        finally:
            for rt in runtimes:
                rt.close()
        open_instances = sum(i.usable for rt in runtimes for i in rt.instances())
        result["all_closed"] = open_instances == 0 and _epoch_threads() == 0
        result["section_ms"] = _ms(time.perf_counter() - section_start)
        return result


# -- Starlark -------------------------------------------------------------------------------


def bench_starlark(
    *, loads: int = 20, concurrent: int = 200, seconds: float = 1.0
) -> dict[str, Any]:
    """The Starlark runtime's figures with the Starlark SDK's hello plugin."""
    from rwq.plugins.runtimes.starlark import StarlarkPlugin, StarlarkRuntime

    entry = SDK / "starlark" / "hello" / "main.star"
    if not entry.is_file():
        raise RuntimeError(f"no {entry} (not a source checkout)")
    section_start = time.perf_counter()
    result: dict[str, Any] = {"plugin": "sdk/starlark/hello"}
    pids: list[int] = []
    zygote_pid: int | None = None

    def load(rt: StarlarkRuntime, name: str) -> StarlarkPlugin:
        plugin = rt.load(name, entry, LIMITS, _noop_host)
        pids.append(plugin.pid)
        return plugin

    rt = StarlarkRuntime()
    try:
        # the first load starts the zygote; the rest fork from it
        first_s, first = _timed(lambda: load(rt, "hello"))
        zygote_pid = rt.zygote.pid
        samples: list[float] = []
        plugins: list[StarlarkPlugin] = []
        for i in range(loads):
            start = time.perf_counter()
            plugin = load(rt, f"hello{i}")
            samples.append(time.perf_counter() - start)
            plugins.append(plugin)
        result["load"] = {
            "first_load_with_zygote_start_ms": _ms(first_s),
            "zygote_start_ms": _ms(first_s - statistics.median(samples)),
            "load_ms": _median_ms(samples),
            "load_p90_ms": _ms(sorted(samples)[int(0.9 * len(samples))]),
            "samples": loads,
        }
        # memory: private memory of each freshly loaded sandbox, and the zygote's
        result["memory"] = {
            "plugins": loads,
            "private_per_plugin_bytes": round(statistics.median(p.memory_bytes() for p in plugins)),
            "zygote_private_bytes": rt.zygote.private_bytes(),
        }
        for plugin in plugins:
            plugin.close()
        first.call(Hook.INITIALIZE, CONFIG)
        result["on_event"] = _on_event(first, seconds)
        result["memory"]["private_after_on_event_bytes"] = first.memory_bytes()
        first.close()
        result["concurrent"] = _concurrent(lambda i: load(rt, f"hello{i}"), concurrent, 16)
    finally:
        rt.close()
    left: list[int] = []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        left = [pid for pid in [*pids, zygote_pid] if pid is not None and _pid_alive(pid)]
        if not left:
            break
        time.sleep(0.02)
    result["all_closed"] = not left and rt.zygote.pid is None
    result["section_ms"] = _ms(time.perf_counter() - section_start)
    return result


def bench_runtimes() -> dict[str, Any]:
    """Both runtimes' figures; a runtime that cannot run here is reported as skipped."""
    result: dict[str, Any] = {
        "host_call": "no-op",
        "limits": {
            "max_memory_bytes": LIMITS.max_memory_bytes,
            "timeout_ms": _ms(LIMITS.timeout_s),
        },
    }
    for name, bench in (("wasm", bench_wasm), ("starlark", bench_starlark)):
        try:
            result[name] = bench()
        except (RuntimeError, OSError, ImportError) as exc:
            result[name] = {"skipped": str(exc)}
    return result
