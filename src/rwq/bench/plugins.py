"""``rwq bench plugins``: the plugin core's figures: capability checks, event delivery and
host API calls; and the runtimes' (:mod:`rwq.bench.runtimes`): load times, ``on_event``
throughput, memory per plugin and 200 plugins at once, for WASM and Starlark."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rwq.bench.bus import _summary, bench_dispatch, bench_stream
from rwq.bench.queue import bench_target
from rwq.bench.runtimes import bench_runtimes
from rwq.config import Settings
from rwq.connection import connect
from rwq.plugins.audit import AuditLog
from rwq.plugins.bus import EventBus
from rwq.plugins.grants import GrantStore
from rwq.plugins.host_api import HostAPI, PluginBinding
from rwq.plugins.storage import PluginStorage
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


def run_plugins_bench(settings: Settings) -> dict[str, Any]:
    """Measure the plugin core and return the figures."""
    result: dict[str, Any] = {"event_delivery": bench_dispatch()}
    with bench_target(settings) as (target, server_kind), tempfile.TemporaryDirectory() as tmp:
        result["server"] = server_kind
        result["stream"] = bench_stream(target)
        result["host_api"] = bench_host(target, Path(tmp))
    result["runtimes"] = bench_runtimes()
    return result
