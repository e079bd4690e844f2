"""The live stream's half of ``rwq bench web``: many browser connections on
``GET /api/v1/stream`` while plugin panels change many times a second (what runs and what is
measured: ``docs/performance.md``)."""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import queue
import re
import resource
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx

from rwq.bench.queue import _percentile, bench_target
from rwq.bench.tui import POLICY, PanelEvents, delete_bench_keys, write_plugins
from rwq.bench.web import web_process
from rwq.config import Settings
from rwq.connection import connect
from rwq.errors import RwqError
from rwq.plugins.runtimes.sandbox import cpu_seconds
from rwq.queue.keys import Keys
from rwq.web.tokens import TokenStore

WARMUP = 3.0
"""Seconds of load, every connection open, before the window measured."""
GRACE = 2.0
"""Seconds the connections keep reading after the window: the frames of its end arrive."""
START_TIMEOUT = 60.0
CONNECTIONS_PER_PROCESS = 25
"""Connections one client process reads (one asyncio loop each): the client's parsing must
not be what falls behind."""
NEWEST_JOB = re.compile(r"<td>j(\d+)</td>")
"""The first job of a bench panel's table: the newest event it shows."""
TARGET_CORES = 1.0
TARGET_BEHIND_S = 1.0


def run_stream_bench(
    settings: Settings,
    *,
    connections: int = 50,
    panels: int = 20,
    rate: float = 5.0,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """``rwq web`` with ``panels`` bench plugins changing ``rate`` times a second each and
    ``connections`` live streams reading them; the figures of ``seconds`` after a warm-up.

    The server runs as a user runs it (its plugin host in the process, the plugins' sandboxes
    below it) over a throwaway Valkey, unless one is configured, in a temporary state dir.
    This process adds the ``job.completed`` events the plugins turn into panel changes (as
    ``rwq bench tui`` does) and reads the streams from client processes of its own.
    """
    for flag, value, least in (
        ("--connections", connections, 1), ("--panels", panels, 1),
        ("--rate", rate, 1e-9), ("--seconds", seconds, 1e-9),
    ):  # fmt: skip
        if value < least:
            raise RwqError(f"{flag}: must be above 0, got {value}")
    with (
        bench_target(settings) as (target, server_kind),
        tempfile.TemporaryDirectory(prefix="rwq-bench-web-") as tmp,
    ):
        root = Path(tmp)
        target = target.replace(state_dir=root / "state")
        names = write_plugins(root / "plugins", panels)
        policy = root / "policy.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        events = PanelEvents(target, [f"bench.{name}" for name in names], rate)
        client = connect(target)
        tokens = TokenStore(client, Keys(target.prefix))
        _, secret = tokens.create("bench-stream", ["observer", "admin.stats.read"], ["*"])
        args = ["--plugins-dir", str(root / "plugins"), "--policy", str(policy), "--no-watch"]
        try:
            events.register()
            with web_process(target, args) as (url, pid):
                _wait_for_panels(url, secret, set(names))
                figures = _measure(url, pid, secret, events, root / "go", connections, seconds)
        finally:
            events.stop.set()
            events.close()
            client.close()
            if server_kind == "configured":
                delete_bench_keys(target)
    if events.error:
        raise RwqError(f"bench web: publishing events failed: {events.error}")
    return {
        "server": server_kind,
        "connections": connections,
        "panels": panels,
        "rate_per_panel": rate,
        "events_published_per_s": round(events.rate_seen, 1),
        **figures,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _wait_for_panels(url: str, secret: str, names: set[str]) -> None:
    """Until one stream has shown every bench plugin's panel drawn by the active plugin."""
    seen: set[str] = set()
    deadline = time.monotonic() + START_TIMEOUT
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.stream("GET", f"{url}/api/v1/stream", headers=headers, timeout=5) as response:
        if response.status_code != 200:
            raise RwqError(f"bench web: the stream answered {response.status_code}")
        reader = _Messages()
        for chunk in response.iter_raw():
            for kind, data in reader.feed(chunk):
                if kind == b"panel":
                    panel = json.loads(data)
                    if panel["state"] == "active" and panel["html"] is not None:
                        seen.add(panel["plugin"])
            if names <= seen:
                return
            if time.monotonic() > deadline:
                break
    raise RwqError(f"bench web: no panel from {', '.join(sorted(names - seen))}")


def _measure(
    url: str, pid: int, secret: str, events: PanelEvents, go: Path, connections: int,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """Open the streams, then start the events and take the server's CPU over the window;
    the figures."""
    processes = math.ceil(connections / CONNECTIONS_PER_PROCESS)
    shares = [len(range(i, connections, processes)) for i in range(processes)]
    publisher = threading.Thread(
        target=events.run, args=(go, go.with_name("never")), name="rwq-bench-events", daemon=True
    )
    spawn = multiprocessing.get_context("spawn")
    opened, results = spawn.Queue(), spawn.Queue()
    schedule = spawn.Array("d", 3)  # the window's start and end, when to stop reading
    clients = [
        spawn.Process(
            target=_client_main,
            args=(url, secret, share, opened, schedule, results),
            name=f"rwq-bench-client-{i}",
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for client in clients:
        client.start()
    try:
        _wait_open(opened, results, clients, connections)
        go.touch()
        publisher.start()
        start = time.time()
        window = (start + WARMUP, start + WARMUP + seconds)
        stop_at = window[1] + GRACE
        schedule[:] = [*window, stop_at]
        _sleep_until(window[0])
        before = _Cpu.take(pid)
        _sleep_until(window[1])
        after = _Cpu.take(pid)
        events.stop.set()
        read = [_result(results, START_TIMEOUT + GRACE) for _ in clients]
    finally:
        events.stop.set()
        for client in clients:
            client.join(timeout=5)
            if client.is_alive():
                client.terminate()
                client.join()
    if publisher.is_alive():
        publisher.join(timeout=10)
    streams = [stream for part in read for stream in part["streams"]]
    client_cpu = sum(part["cpu_s"] for part in read)
    return stream_figures(streams, window, stop_at, before, after, client_cpu, events.sent_at)


def _wait_open(opened: Any, results: Any, clients: Sequence[BaseProcess], connections: int) -> None:
    """Until the client processes say every stream is open (or one of them failed)."""
    count = 0
    deadline = time.monotonic() + START_TIMEOUT
    while count < connections:
        if any(not client.is_alive() for client in clients):
            _result(results, 5)  # its error
            raise RwqError("bench web: a client process ended before the window")
        try:
            count += opened.get(timeout=0.2)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise RwqError(f"bench web: {connections - count} streams did not open") from None


def _result(results: Any, timeout: float) -> dict[str, Any]:
    """The next client process's records; its error raised."""
    try:
        result: dict[str, Any] = results.get(timeout=timeout)
    except queue.Empty:
        raise RwqError("bench web: a client process did not answer") from None
    if "error" in result:
        raise RwqError(f"bench web: a client process failed: {result['error']}")
    return result


def _sleep_until(at: float) -> None:
    rest = at - time.time()
    if rest > 0:
        time.sleep(rest)


@dataclass
class _Cpu:
    """CPU seconds of the server process and of the processes under it, at one moment."""

    at: float
    server: float
    below: dict[int, float]
    """By pid: the plugin host's zygote and the sandboxes it forked."""

    @classmethod
    def take(cls, pid: int) -> _Cpu:
        below = {child: cpu_seconds(child) or 0.0 for child in _descendants(pid)}
        return cls(time.time(), cpu_seconds(pid) or 0.0, below)


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (children, their children...), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


# -- the client processes -----------------------------------------------------------------------


Panel = tuple[str, int, float, float, int]
"""A panel message received: plugin, seq, at, received, round (:class:`StreamRecord`)."""


@dataclass
class StreamRecord:
    """What one connection received: ``(plugin, seq, at, received, round)`` per panel and
    ``(at, received)`` per statistics message, times in Unix seconds; ``round``: the newest
    round of bench events the panel shows (its table's first job, ``j<round>``), or -1."""

    panels: list[Panel] = field(default_factory=list)
    stats: list[tuple[float, float]] = field(default_factory=list)
    messages: int = 0
    window_bytes: int = 0
    """Bytes received in the window."""
    opened_at: float = 0.0


class _Messages:
    """Splits a Server-Sent Events byte stream into ``(event, data)`` pairs (comments and
    keep-alives dropped)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        *complete, self.buffer = (self.buffer + chunk).split(b"\n\n")
        found = []
        for message in complete:
            kind = data = b""
            for line in message.split(b"\n"):
                if line.startswith(b"event: "):
                    kind = line[7:]
                elif line.startswith(b"data: "):
                    data = line[6:]
            if kind:
                found.append((kind, data))
        return found


def _client_main(
    url: str, secret: str, connections: int, opened: Any, schedule: Any, results: Any
) -> None:
    """Entry point of a client process: open ``connections`` streams, say so on ``opened``,
    read them until ``schedule`` says stop; what each received and this process's CPU
    seconds over the window (or its error) on ``results``."""
    try:
        results.put(asyncio.run(_read_all(url, secret, connections, opened, schedule)))
    except Exception as exc:
        results.put({"error": f"{type(exc).__name__}: {exc}"})


@dataclass
class _Window:
    start: float = math.inf
    end: float = math.inf
    stop_at: float = math.inf


async def _read_all(
    url: str, secret: str, connections: int, opened: Any, schedule: Any
) -> dict[str, Any]:
    records = [StreamRecord() for _ in range(connections)]
    window = _Window()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        readers = [asyncio.create_task(_read(client, r, window)) for r in records]
        while not all(r.opened_at for r in records):
            if failed := [t for t in readers if t.done()]:
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                failed[0].result()  # its error
                raise RwqError("bench web: a stream ended before the window")
            await asyncio.sleep(0.02)
        opened.put(connections)
        while not schedule[2]:
            await asyncio.sleep(0.02)
        window.start, window.end, window.stop_at = schedule[:]
        await asyncio.sleep(max(0.0, window.start - time.time()))
        before = _own_cpu()
        await asyncio.sleep(max(0.0, window.end - time.time()))
        cpu = _own_cpu() - before
        _, late = await asyncio.wait(readers, timeout=window.stop_at - time.time() + 5)
        for reader in late:  # nothing came for seconds: not even the statistics
            reader.cancel()
        for reader in readers:
            if not reader.cancelled():
                reader.result()
    return {"streams": [vars(r) for r in records], "cpu_s": cpu}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _read(client: httpx.AsyncClient, record: StreamRecord, window: _Window) -> None:
    reader = _Messages()
    timeout = httpx.Timeout(START_TIMEOUT, read=None)
    async with client.stream("GET", "/api/v1/stream", timeout=timeout) as response:
        if response.status_code != 200:
            said = (await response.aread()).decode("utf-8", "replace")[:300]
            raise RwqError(f"bench web: the stream answered {response.status_code}: {said}")
        record.opened_at = time.time()
        async for chunk in response.aiter_raw():
            received = time.time()  # before parsing: the chunk's other messages wait
            if received >= window.stop_at:  # statistics come every second at least
                return
            if window.start <= received <= window.end:
                record.window_bytes += len(chunk)
            for kind, data in reader.feed(chunk):
                record.messages += 1
                if kind == b"panel":
                    panel = json.loads(data)
                    shows = NEWEST_JOB.search(panel["html"] or "")
                    record.panels.append((
                        panel["plugin"], panel["seq"], panel["at"], received,
                        int(shows[1]) if shows else -1,
                    ))  # fmt: skip
                elif kind == b"stats":
                    record.stats.append((json.loads(data)["at"], received))


# -- the figures --------------------------------------------------------------------------------


def stream_figures(
    streams: list[dict[str, Any]],
    window: tuple[float, float],
    stop_at: float,
    before: _Cpu,
    after: _Cpu,
    client_cpu: float,
    sent_at: list[float],
) -> dict[str, Any]:
    """The figures of the streams' records (:class:`StreamRecord` as dicts) over ``window``:
    messages stamped (``at``) inside it count, whenever they arrived before ``stop_at``;
    ``sent_at``: when each round of bench events was added."""
    start, end = window
    wall = after.at - before.at
    made = _frames_made(streams, window)
    lags: list[float] = []
    since_event: list[float] = []
    kbs: list[float] = []
    stats_lags: list[float] = []
    per_stream = []
    for stream in streams:
        inside = [p for p in stream["panels"] if start <= p[2] <= end]
        lag = [received - at for _, _, at, received, _ in inside]
        lags += lag
        since_event += [p[3] - sent_at[p[4]] for p in inside if 0 <= p[4] < len(sent_at)]
        kbs.append(stream["window_bytes"] / 1024 / (end - start))
        stats_lags += [received - at for at, received in stream["stats"] if start <= at <= end]
        behind, skipped = _behind(stream["panels"], made, stop_at)
        per_stream.append((len(inside), max(lag, default=0.0), behind, skipped))
    sandbox = sum(
        used - before.below.get(pid, 0.0) for pid, used in after.below.items()
    )  # a process started in the window counts from 0
    server_cores = (after.server - before.server) / wall
    worst_behind = max((s[2] for s in per_stream), default=math.inf)
    delivered = [s[0] / (end - start) for s in per_stream]
    return {
        "window_s": round(wall, 3),
        "frames_made_per_s": round(sum(len(f) for f in made.values()) / (end - start), 1),
        "panel_events_per_s": round(sum(delivered), 1),
        "panel_events_per_connection_per_s": _spread(delivered),
        "frames_skipped": sum(s[3] for s in per_stream),
        "kb_per_connection_per_s": _spread(kbs),
        "panel_lag_ms": _ms(lags),
        "event_to_browser_ms": _ms(since_event),
        "stats_lag_ms": _ms(stats_lags),
        "worst_connection_lag_ms": round(max((s[1] for s in per_stream), default=0) * 1000, 1),
        "worst_connection_behind_ms": round(worst_behind * 1000, 1),
        "server_cores": round(server_cores, 3),
        "plugin_processes_cores": round(sandbox / wall, 3),
        "plugin_processes": len(after.below),
        "client_cores": round(client_cpu / wall, 3),
        "targets": {
            "server_under_one_core": server_cores < TARGET_CORES,
            "no_connection_over_1s_behind": worst_behind <= TARGET_BEHIND_S,
        },
    }


def _frames_made(
    streams: list[dict[str, Any]], window: tuple[float, float]
) -> dict[str, dict[int, float]]:
    """The frames the server made in ``window``, as far as any stream saw them: by plugin,
    ``at`` by ``seq`` (a frame every stream skipped is not known, nor counted)."""
    made: dict[str, dict[int, float]] = {}
    for stream in streams:
        for plugin, seq, at, _, _ in stream["panels"]:
            if window[0] <= at <= window[1]:
                made.setdefault(plugin, {})[seq] = at
    return made


def _behind(
    panels: list[Panel], made: dict[str, dict[int, float]], stop_at: float
) -> tuple[float, int]:
    """How far one stream fell behind the server (seconds), and the frames it never got.

    A stream is behind on a panel from the moment the server made a frame newer than the one
    it shows until a frame at least that new arrives: at each arrival, its time less the
    ``at`` of the oldest frame made since the one shown before (its own lag when it skipped
    none); frames made that never arrived count up to ``stop_at``.
    """
    worst = 0.0
    skipped = 0
    shown: dict[str, int] = {}
    for plugin, seq, _, received, _ in panels:
        frames = made.get(plugin, {})
        newer = [at for s, at in frames.items() if shown.get(plugin, -1) < s <= seq]
        if newer:
            worst = max(worst, received - min(newer))
            skipped += len(newer) - (seq in frames)
        shown[plugin] = max(seq, shown.get(plugin, -1))
    for plugin, frames in made.items():
        missed = [at for s, at in frames.items() if s > shown.get(plugin, -1)]
        if missed:
            worst = max(worst, stop_at - min(missed))
            skipped += len(missed)
    return worst, skipped


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"min": 0.0, "median": 0.0, "max": 0.0}
    return {
        "min": round(ordered[0], 1),
        "median": round(ordered[len(ordered) // 2], 1),
        "max": round(ordered[-1], 1),
    }


def _ms(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "count": len(seconds),
        "p50": round(_percentile(seconds, 0.5) * 1000, 1),
        "p99": round(_percentile(seconds, 0.99) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }
