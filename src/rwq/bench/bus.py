"""``rwq bench bus``: event delivery latency of the plugin event bus.

Two figures: ``publish`` to the event being in a batch handed over by the dispatcher in
another thread (with many subscriptions), and a Redis ``XADD`` to a queue's stream to the
event being in a plugin's inbox (through :class:`~rwq.plugins.eventbus.feed.StreamFeed`).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any

from rwq.bench.queue import _percentile, bench_target
from rwq.config import Settings
from rwq.connection import connect
from rwq.plugins.contract.events import local_event
from rwq.plugins.eventbus.bus import EventBus
from rwq.plugins.eventbus.dispatcher import Dispatcher
from rwq.plugins.eventbus.feed import StreamFeed
from rwq.queue.events import Event
from rwq.queue.keys import Keys


def _summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(_percentile(samples_ms, 0.50), 4),
        "p99_ms": round(_percentile(samples_ms, 0.99), 4),
        "max_ms": round(max(samples_ms), 4),
        "mean_ms": round(statistics.fmean(samples_ms), 4),
    }


def bench_dispatch(
    *, subscriptions: int = 10_000, plugins: int = 50, events: int = 5000
) -> dict[str, Any]:
    """Publish paced events to a bus with ``subscriptions`` subscriptions; time each one
    from ``publish`` to its batch reaching ``deliver`` in a dispatcher thread."""
    bus = EventBus()
    for i in range(subscriptions - plugins):  # noise: other types and queues
        bus.subscribe(f"p{i % plugins}", "job.started", queues=[f"other-{i}"])
    for p in range(plugins):
        bus.subscribe(f"p{p}", "job.*", queues=["bench"] if p % 2 else ["ben*"])
    latencies: list[float] = []
    lock = threading.Lock()
    done = threading.Event()
    expected = events * plugins

    def deliver(plugin: str, batch: list[Event]) -> None:
        now = time.perf_counter()
        with lock:
            latencies.extend((now - e.data["t0"]) * 1000 for e in batch if e.data["t0"])
            if len(latencies) >= expected:
                done.set()

    dispatcher = Dispatcher(bus, deliver, threads=4)
    try:
        for _ in range(events):
            event = local_event("job.completed", {"t0": time.perf_counter()}, queue="bench")
            bus.publish(event)
            time.sleep(0.0002)
        done.wait(30)
        measured = list(latencies)
        burst = 20_000  # throughput, with the dispatcher draining 50 plugins alongside
        start = time.perf_counter()
        for _ in range(burst):
            bus.publish(local_event("job.completed", {"t0": 0.0}, queue="bench"))
        publish_rate = burst / (time.perf_counter() - start)
    finally:
        dispatcher.stop()
    return {
        "subscriptions": subscriptions,
        "plugins": plugins,
        "publish_to_batch": _summary(measured),
        "publish_per_s": round(publish_rate),
    }


def bench_stream(settings: Settings, *, events: int = 2000) -> dict[str, Any]:
    """Time a raw ``XADD`` to a queue's stream until the event is in a plugin's inbox."""
    client = connect(settings)
    keys = Keys(settings.prefix)
    queue = "bench"
    client.sadd(keys.queues, queue)
    stream = keys.queue(queue).events
    bus = EventBus(maxlen=events + 10)
    bus.subscribe("p", "job.*")
    arrived: dict[str, float] = {}

    def on_work(plugin: str) -> None:  # runs in the feed thread, right after the append
        now = time.perf_counter()
        for event in bus.drain(plugin):
            arrived[event.id] = now

    bus.add_work_listener(on_work)
    feed = StreamFeed(client, keys, bus)
    feed.start()
    sent: dict[str, float] = {}
    try:
        time.sleep(0.2)
        for i in range(events):
            t0 = time.perf_counter()
            entry_id = str(client.xadd(stream, {"type": "job.enqueued", "job_id": str(i)}))
            sent[entry_id] = t0
            time.sleep(0.001)
        deadline = time.monotonic() + 10
        while len(arrived) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        feed.stop()
        client.delete(stream, keys.queues)
        client.close()
    latencies = [(arrived[i] - t0) * 1000 for i, t0 in sent.items() if i in arrived]
    return {"xadd_to_inbox": _summary(latencies), "lost": len(sent) - len(latencies)}


def run_bus_bench(settings: Settings) -> dict[str, Any]:
    """Measure the bus and return the figures."""
    result: dict[str, Any] = {"dispatch": bench_dispatch()}
    with bench_target(settings) as (target, server_kind):
        result["stream"] = {"server": server_kind, **bench_stream(target)}
    return result


if __name__ == "__main__":
    print(json.dumps(run_bus_bench(Settings.load()), indent=2))
