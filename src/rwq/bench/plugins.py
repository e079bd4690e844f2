"""``rwq bench plugins``: the plugin core's figures: capability checks, event delivery and
host API calls; the runtimes' (:mod:`rwq.bench.runtimes`): load times, ``on_event``
throughput, memory per plugin and 200 plugins at once, for WASM and Starlark; hot reload,
from a file written to the new version serving; and the scale scenario
(:mod:`rwq.bench.scale`): 100 and 200 Starlark plugins on ``job.*`` under real queue traffic."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rwq.bench.bus import _summary, bench_dispatch, bench_stream
from rwq.bench.distribution import bench_distribution
from rwq.bench.queue import bench_target
from rwq.bench.runtimes import SDK, bench_runtimes
from rwq.bench.scale import run_scale_bench
from rwq.config import Settings
from rwq.connection import connect
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.host_api.service import HostAPI, PluginBinding
from rwq.plugins.host_api.storage import PluginStorage
from rwq.plugins.ops.reloader import HotReloader
from rwq.plugins.runtimes.base import PluginRuntime
from rwq.plugins.trust.audit import AuditLog
from rwq.plugins.trust.grants import GrantStore
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.producer import Producer

VERSION = "1.0.0"
BUNDLE = "sha256:" + "b" * 64


def _timed(call: Callable[[], Any], n: int) -> list[float]:
    """Milliseconds of each of ``n`` calls."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def bench_host(settings: Settings, state: Path, *, plugins: int = 16) -> dict[str, Any]:
    """Capability check + audit, simple host calls, and host API ops/s across plugins."""
    client = connect(settings)
    audit = AuditLog(state / "audit.jsonl")
    grants = GrantStore(state / "grants.json", audit=audit)
    broker = Broker(client, settings)
    producer = Producer(broker)
    names = [f"p{i}" for i in range(plugins)]
    bindings = {name: PluginBinding(VERSION, BUNDLE) for name in names}
    for name in names:
        grants.grant(name, ["admin.stats.read", "storage.read", "storage.write"],
                     version=VERSION, bundle_hash=BUNDLE, queues=["bench*"])  # fmt: skip
    stores = {
        name: PluginStorage(client, broker.keys, name, max_keys=100, max_bytes=1 << 16)
        for name in names
    }
    api = HostAPI(
        grants=grants, audit=audit, admin=Admin(broker), producer=producer, bus=EventBus(),
        storage=stores.__getitem__, bindings=bindings.get,
    )  # fmt: skip
    producer.enqueue_many("bench", range(100))
    for store in stores.values():
        store.set("config", '{"threshold": 5}')
    try:
        check = _timed(
            lambda: grants.check(
                "p0", "admin.stats.read", queue="bench", version=VERSION, bundle_hash=BUNDLE
            ),
            20_000,
        )
        storage_get = _timed(lambda: api.call("p0", "storage_get", {"key": "config"}), 5_000)
        stats = _timed(lambda: api.call("p0", "get_queue_stats", {"queue": "bench"}), 2_000)
        per_plugin = 1_000

        def run(plugin: str) -> None:
            for i in range(per_plugin):
                if i % 4:
                    api.call(plugin, "storage_get", {"key": "config"})
                else:
                    api.call(plugin, "get_queue_stats", {"queue": "bench"})

        threads = [threading.Thread(target=run, args=(name,)) for name in names]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ops = plugins * per_plugin / (time.perf_counter() - start)
    finally:
        audit.close()
        for key in client.scan_iter(match=f"{settings.prefix}:*", count=1000):
            client.delete(key)
        client.close()
    to_us = {k: (v * 1000 if k.endswith("_ms") else v) for k, v in _summary(check).items()}
    return {
        "check_and_audit_us": {k.replace("_ms", "_us"): round(v, 2) for k, v in to_us.items()},
        "storage_get": _summary(storage_get),
        "get_queue_stats": _summary(stats),
        "ops_per_s": {
            "plugins": plugins,
            "mix": "3 storage_get : 1 get_queue_stats",
            "value": round(ops),
        },
    }


# -- hot reload -------------------------------------------------------------------------------

RELOAD_WAIT = 5.0
"""Longest one reload may take before it counts as failed."""


def _reload_times(
    settings: Settings,
    work: Path,
    runtimes: dict[str, PluginRuntime],
    plugin: Path,
    write: Callable[[int], str],
    reloads: int,
    *,
    warmup: int = 0,
) -> dict[str, Any]:
    """Run ``plugin`` (copied under ``work``) in a manager with a watching
    :class:`HotReloader`; ``warmup + reloads`` times, call ``write(i)`` (it writes a new
    version into the copy and returns the start of its first render line) and time until
    ``render`` answers with that line. The first ``warmup`` are not counted."""
    root = work / "plugins"
    shutil.copytree(plugin, root / plugin.name)
    policy = work / "policy.yaml"
    manifest = (plugin / "manifest.yaml").read_text(encoding="utf-8")
    name = next(line.split(":", 1)[1].strip() for line in manifest.splitlines()
                if line.startswith("name:"))  # fmt: skip
    policy.write_text(f"plugins:\n  {name}:\n    grant: [events.subscribe]\n", encoding="utf-8")
    here = settings.replace(plugin_dirs=str(root), state_dir=work / "state")
    client = connect(here)
    manager = PluginManager(here, runtimes, client, policy_path=policy, feeds=False)
    reloader = HotReloader(manager)
    samples: list[float] = []
    failed: list[str] = []
    try:
        manager.start()
        if manager.state(name) is not PluginState.ACTIVE:
            return {"error": f"{name} did not start: {manager.reason(name)}"}
        reloader.start()
        for i in range(1, warmup + reloads + 1):
            start = time.perf_counter()
            marker = write(i)
            deadline = start + RELOAD_WAIT
            while True:
                elements = manager.render(name, 80, 24).elements
                if elements and str(elements[0].get("text", "")).startswith(marker):
                    if i > warmup:
                        samples.append((time.perf_counter() - start) * 1000)
                    break
                if time.perf_counter() > deadline:
                    history = reloader.history(name)
                    failed.append(f"{marker}: {history[-1] if history else 'no attempt'}")
                    break
                time.sleep(0.0005)
            time.sleep(0.05)  # let the watcher go quiet before the next save
    finally:
        reloader.stop()
        manager.stop()
        client.close()
    result: dict[str, Any] = _summary(samples) if samples else {"n": 0}
    if failed:
        result["failed"] = failed[:5]
    return result


def _c_variants(tmp: Path, count: int) -> list[Path]:
    """``count`` builds of ``sdk/c/hello`` whose first render line starts ``v<i> ``."""
    if shutil.which("clang") is None:
        raise RuntimeError("clang is not installed")
    source = (SDK / "c" / "hello" / "main.c").read_text(encoding="utf-8")
    original = '"%s: %lld events of %d types"'
    if original not in source:
        raise RuntimeError("sdk/c/hello/main.c no longer renders the line this bench patches")
    built = []
    for i in range(1, count + 1):
        src = tmp / f"src{i}"
        src.mkdir()
        (src / "main.c").write_text(source.replace(original, f'"v{i} {original[1:]}'), "utf-8")
        out = tmp / f"v{i}.wasm"
        build = subprocess.run([str(SDK / "c" / "build.sh"), str(src), str(out)],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        if build.returncode != 0:
            raise RuntimeError(f"build.sh failed: {build.stderr.strip()[-500:]}")
        built.append(out)
    return built


def bench_reload(
    settings: Settings, *, reloads: int = 20, fresh_modules: int = 5
) -> dict[str, Any]:
    """Hot reload from a file write to the new version serving (``render`` answering with
    the new version's output), through the watcher (20 ms debounce), the swap and
    ``render``; p50/p99 over ``reloads`` reloads:

    * ``starlark``: ``sdk/starlark/hello`` with its ``main.star`` rewritten each time;
    * ``wasm_cached``: ``sdk/c/hello``, its ``main.wasm`` replaced by one of two builds taking
      turns (compiled once each, then from the module cache: a rebuild of a module seen
      before, e.g. an undo);
    * ``wasm_new_module``: a new build each time (``fresh_modules`` reloads; compiling the
      new module is part of the figure).
    """
    from rwq.plugins.runtimes.starlark import StarlarkRuntime
    from rwq.plugins.runtimes.wasm import WasmRuntime

    result: dict[str, Any] = {"reloads": reloads, "from": "file write", "to": "render shows it"}
    with tempfile.TemporaryDirectory(prefix="rwq-bench-reload-") as tmp:
        work = Path(tmp)
        hello = SDK / "starlark" / "hello"
        star = (hello / "main.star").read_text(encoding="utf-8")
        line = 'line = "%s: %d events'
        if line not in star:
            result["starlark"] = {"skipped": "sdk/starlark/hello no longer renders that line"}
        else:
            entry = work / "starlark" / "plugins" / hello.name / "main.star"
            (work / "starlark").mkdir()

            def write_star(i: int) -> str:
                entry.write_text(star.replace(line, f'line = "v{i} %s: %d events'), "utf-8")
                return f"v{i} "

            result["starlark"] = _reload_times(
                settings, work / "starlark", {"starlark": StarlarkRuntime()}, hello, write_star,
                reloads,
            )  # fmt: skip
        try:
            builds = _c_variants(work, 2 + fresh_modules)
        except (RuntimeError, OSError) as exc:
            result["wasm_cached"] = result["wasm_new_module"] = {"skipped": str(exc)}
            return result
        c_hello = work / "c-hello"
        shutil.copytree(SDK / "c" / "hello", c_hello)
        shutil.copyfile(builds[0], c_hello / "main.wasm")
        result["wasm_module_bytes"] = builds[0].stat().st_size
        # builds[k] renders "v<k+1> ...": the cached section swaps builds 0 and 1 in turn
        # (one unmeasured reload compiles build 1), the other a new build each time
        for section, pick, n, warmup in (
            ("wasm_cached", lambda i: i % 2, reloads, 1),
            ("wasm_new_module", lambda i: 1 + i, fresh_modules, 0),
        ):
            home = work / section
            home.mkdir()
            wasm = home / "plugins" / "c-hello" / "main.wasm"

            def write_wasm(i: int, pick: Callable[[int], int] = pick, wasm: Path = wasm) -> str:
                k = pick(i)
                wasm.write_bytes(builds[k].read_bytes())
                return f"v{k + 1} "

            runtime = WasmRuntime(cache_dir=home / "cache")
            result[section] = _reload_times(
                settings, home, {"wasm": runtime}, c_hello, write_wasm, n, warmup=warmup
            )
    return result


def run_plugins_bench(
    settings: Settings,
    *,
    scale_plugins: Sequence[int] = (100, 200),
    scale_seconds: float = 10.0,
    only_scale: bool = False,
) -> dict[str, Any]:
    """Measure the plugin core and return the figures: the scale scenario once per count of
    ``scale_plugins`` (none if empty), and only that if ``only_scale``."""
    result: dict[str, Any] = {} if only_scale else {"event_delivery": bench_dispatch()}
    with bench_target(settings) as (target, server_kind), tempfile.TemporaryDirectory() as tmp:
        result["server"] = server_kind
        if not only_scale:
            result["stream"] = bench_stream(target)
            result["host_api"] = bench_host(target, Path(tmp))
            result["hot_reload"] = bench_reload(target)
            result["distribution"] = bench_distribution(target, Path(tmp) / "distribution")
        if scale_plugins:
            result["scale"] = run_scale_bench(target, plugins=scale_plugins, seconds=scale_seconds)
    if not only_scale:
        result["runtimes"] = bench_runtimes()
    return result
