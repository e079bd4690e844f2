"""``rwq bench tui``: many plugin panels changing many times a second, in a real terminal
(what runs and what is measured: ``docs/performance.md``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import resource
import select
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rwq.bench.queue import _percentile, bench_target
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.procfs import thread_cpu

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

PANEL_WIDTH = 48
"""Cells per panel column of the bench's grid."""
PANEL_HEIGHT = 20
"""Rows per panel: the body (18 lines) and its border."""
CHROME_ROWS = 6
"""Header, tabs and footer around the panels view."""
WARMUP = 2.0
"""Seconds of load before the window measured."""
START_TIMEOUT = 60.0

PLUGIN_SOURCE = """\
def initialize(config):
    state.set("n", 0)
    state.set("values", [])
    state.set("rows", [])
    return None

def on_event(events):
    n = state.get("n", 0)
    values = state.get("values", [])
    rows = state.get("rows", [])
    for event in events:
        n += 1
        data = event["data"]
        value = data.get("duration_ms", 0)
        values.append(value)
        status = "slow" if value >= 80 else "ok"
        rows.insert(0, [data.get("job", ""), "tenant-%d" % (n % 7), value, status])
    state.set("n", n)
    state.set("values", values[-60:])
    state.set("rows", rows[:10])
    return {"changed": True}

def render(size):
    n = state.get("n", 0)
    values = state.get("values", [])
    rows = state.get("rows", [])
    last = values[-1] if values else 0
    peak = max(values) if values else 0
    return [
        {"type": "text", "text": "events %d, last %d ms" % (n, last), "level": "info"},
        {"type": "kv", "items": [["seen", n], ["last", last], ["peak", peak]]},
        {"type": "sparkline", "label": "ms", "values": values, "min": 0, "max": 100},
        {"type": "gauge", "label": "load", "value": last, "max": 100, "warn": 70, "crit": 90},
        {"type": "table", "columns": ["job", "tenant", "ms", "status"], "rows": rows},
    ]
"""
"""A typical panel: a text line, a kv list, a sparkline of the last 60 values, a gauge and a
10-row table, all changing on every event."""

MANIFEST = """\
name: {name}
version: 1.0.0
api_version: v1
description: rwq bench tui panel {index}
author: rwq bench
runtime: starlark
entry_point: main.star
permissions:
  - events.subscribe
resources:
  max_memory: 32MB
  max_cpu: 100%
  timeout: 2s
ui:
  panel_title: bench panel {index}
  min_width: 40
  min_height: {height}
events:
  - type: job.completed
    queues: ["{queue}"]
"""

POLICY = """\
plugins:
  "*":
    grant: [events.subscribe]
    queues: ["bench.*"]
"""


def plugin_name(index: int) -> str:
    return f"bench-panel-{index:02d}"


def write_plugins(root: Path, panels: int) -> list[str]:
    """``panels`` bench plugins under ``root``; their names."""
    names = []
    for index in range(panels):
        name = plugin_name(index)
        folder = root / name
        folder.mkdir(parents=True)
        manifest = MANIFEST.format(
            name=name, index=index, height=PANEL_HEIGHT, queue=f"bench.{name}"
        )
        (folder / "manifest.yaml").write_text(manifest, encoding="utf-8")
        (folder / "main.star").write_text(PLUGIN_SOURCE, encoding="utf-8")
        names.append(name)
    return names


def grid_of(panels: int) -> tuple[int, int, int, int]:
    """``(columns, rows of panels, terminal columns, terminal rows)`` showing every panel."""
    columns = max(1, math.ceil(math.sqrt(panels * 1.2)))
    rows = math.ceil(panels / columns)
    return columns, rows, columns * PANEL_WIDTH, rows * PANEL_HEIGHT + CHROME_ROWS


# -- the parent ---------------------------------------------------------------------------------


def run_tui_bench(
    settings: Settings, *, panels: int = 20, rate: float = 30.0, seconds: float = 10.0
) -> dict[str, Any]:
    """Run the TUI with ``panels`` plugins changing ``rate`` times a second in a pty; the
    figures of ``seconds`` measured after a warm-up.

    The TUI runs in a child process attached to a pseudo-terminal of a fixed size (the real
    terminal driver, not Textual's headless mode), with its plugin host process as ``rwq tui``
    runs it. This process drains the terminal's output and, once the panels are on screen,
    adds ``job.completed`` events to the queues' streams, so every event takes the real path
    to the screen; the child measures and writes its figures as JSON for this process. All of
    it runs on a throwaway Valkey in a temporary state dir: the user's data is untouched.
    """
    if panels < 1:
        raise RwqError(f"--panels: must be at least 1, got {panels}")
    if rate <= 0:
        raise RwqError(f"--rate: must be above 0, got {rate}")
    if seconds <= 0:
        raise RwqError(f"--seconds: must be above 0, got {seconds}")
    columns, _, width, height = grid_of(panels)
    with (
        bench_target(settings) as (target, server_kind),
        tempfile.TemporaryDirectory(prefix="rwq-bench-tui-") as tmp,
    ):
        root = Path(tmp)
        names = write_plugins(root / "plugins", panels)
        events = PanelEvents(target, [f"bench.{name}" for name in names], rate)
        policy = root / "policy.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        out = root / "figures.json"
        config = {
            "redis_url": target.redis_url,
            "prefix": target.prefix,
            "state_dir": str(root / "state"),
            "plugins_dir": str(root / "plugins"),
            "policy": str(policy),
            "plugins": names,
            "rate": rate,
            "seconds": seconds,
            "warmup": WARMUP,
            "grid_columns": columns,
            "out": str(out),
            "ready": str(root / "ready"),
            "go": str(root / "go"),
        }
        (root / "config.json").write_text(json.dumps(config), encoding="utf-8")
        try:
            events.register()
            publisher = threading.Thread(
                target=events.run, args=(root / "go", out), name="rwq-bench-events", daemon=True
            )
            publisher.start()
            written, log = _run_child(root / "config.json", root / "ready", width, height, seconds)
            events.stop.set()
            publisher.join(timeout=10)
        finally:
            events.close()
            if server_kind == "configured":
                delete_bench_keys(target)
        if not out.is_file():
            raise RwqError(f"bench tui: the TUI process wrote no figures; its output:\n{log}")
        figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    if "error" in figures:
        raise RwqError(f"bench tui: {figures['error']}")
    if events.error:
        raise RwqError(f"bench tui: publishing events failed: {events.error}")
    figures["events_published_per_s"] = round(events.rate_seen, 1)
    figures["server"] = server_kind
    figures["terminal"] = {
        "size": f"{width}x{height}",
        "term": "xterm-256color",
        "bytes_written_per_s": round(written / max(figures["window_s"], 1e-9)),
    }
    return figures


class PanelEvents:
    """Adds ``job.completed`` events to the bench queues' streams, ``rate`` a second each, from
    the bench's own process (so the processes measured spend nothing on making them; ``rwq
    bench web`` drives its panels with it too)."""

    def __init__(self, target: Settings, queues: list[str], rate: float) -> None:
        from rwq.connection import connect
        from rwq.queue.keys import Keys

        self.client = connect(target)
        self.keys = Keys(target.prefix)
        self.queues = queues
        self.rate = rate
        self.stop = threading.Event()
        self.error = ""
        self.sent = 0
        self.rate_seen = 0.0
        self.sent_at: list[float] = []
        """When each round of events was added (Unix time), by round: its events' job is
        ``j<round>``."""

    def register(self) -> None:
        """The queues in the registry before the TUI (or ``rwq web``) starts: its feed follows
        them."""
        self.client.sadd(self.keys.queues, *self.queues)

    def run(self, go: Path, done: Path) -> None:
        """Once ``go`` exists, publish until ``done`` does (the TUI wrote its figures) or
        :attr:`stop` is set."""
        try:
            while not go.exists():
                if self.stop.wait(0.05):
                    return
            streams = [self.keys.queue(queue).events for queue in self.queues]
            period = 1.0 / self.rate
            tick = 0
            started = time.monotonic()
            while not self.stop.is_set() and not done.exists():
                pipe = self.client.pipeline(transaction=False)
                value = (tick * 7) % 100
                for i, stream in enumerate(streams):
                    fields: dict[FieldT, EncodableT] = {
                        "type": "job.completed", "job": f"j{tick}",
                        "duration_ms": (value + i * 13) % 100,
                    }  # fmt: skip
                    pipe.xadd(stream, fields, maxlen=1000, approximate=True)
                self.sent_at.append(time.time())
                pipe.execute()
                self.sent += len(streams)
                tick += 1
                rest = started + tick * period - time.monotonic()
                if rest > 0:
                    self.stop.wait(rest)
            self.rate_seen = self.sent / max(time.monotonic() - started, 1e-9)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.client.close()


def delete_bench_keys(target: Settings) -> None:
    """Remove what the run left under its private prefix on a configured server."""
    from rwq.connection import connect

    client = connect(target)
    try:
        for key in client.scan_iter(match=f"{target.prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


def _run_child(
    config: Path, ready: Path, width: int, height: int, seconds: float
) -> tuple[int, str]:
    """Run the TUI child on a pty of ``width`` x ``height``, press ``4`` (the panels view) once
    it says it is ``ready``; the bytes it wrote to the terminal and the tail of its output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(width), "LINES": str(height)}
    env.pop("TEXTUAL", None)
    code = "from rwq.bench.tui import child_main; child_main()"
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(config)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    total = 0
    pressed = False
    tail = bytearray()
    deadline = time.monotonic() + START_TIMEOUT + WARMUP + seconds + 30
    try:
        while True:
            if time.monotonic() > deadline:
                child.kill()
                break
            if not pressed and ready.exists():
                os.write(master, b"4")
                pressed = True
            readable, _, _ = select.select([master], [], [], 0.2)
            if readable:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                total += len(chunk)
                tail += chunk
                del tail[:-8000]
            elif child.poll() is not None:
                break
    finally:
        os.close(master)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    # about the window's share of everything written (start-up and exit included)
    return total, tail.decode("utf-8", "replace")


# -- the child (the TUI under load) -------------------------------------------------------------


def child_main() -> None:
    """Entry point of the TUI process: ``python -c ... CONFIG``."""
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(config["out"])
    profile = os.environ.get("RWQ_BENCH_TUI_PROFILE")
    try:
        if profile:  # where the UI thread's time goes: python -m pstats FILE
            import cProfile

            cProfile.runctx("_child(config, out)", globals(), locals(), profile)
        else:
            _child(config, out)
    except Exception as exc:
        if not out.exists():
            out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        raise


def _child(config: dict[str, Any], out: Path) -> None:
    from rwq.connection import connect
    from rwq.host.remote import RemotePluginHost
    from rwq.tui.app import RwqApp

    settings = Settings(
        redis_url=config["redis_url"],
        prefix=config["prefix"],
        state_dir=Path(config["state_dir"]),
        persistence=False,
        plugin_dirs=config["plugins_dir"],
    )
    client = connect(settings)
    host = RemotePluginHost(settings, policy_path=Path(config["policy"]), watch=False)
    app = RwqApp(settings, client, host=host, address="bench")
    load = _Load(app, host, config, out)
    host.start()
    try:
        thread = threading.Thread(target=load.run, name="rwq-bench-load", daemon=True)
        thread.start()
        app.run()
    finally:
        host.stop()
        client.close()
    if load.error and not out.exists():
        out.write_text(json.dumps({"error": load.error}))


class _Load:
    """Measures, from its own thread of the TUI process."""

    def __init__(self, app: Any, host: Any, config: dict[str, Any], out: Path) -> None:
        self.app = app
        self.host = host
        self.names: list[str] = config["plugins"]
        self.rate: float = config["rate"]
        self.seconds: float = config["seconds"]
        self.warmup: float = config["warmup"]
        self.columns: int = config["grid_columns"]
        self.out = out
        self.ready = Path(config["ready"])
        self.go = Path(config["go"])
        self.error = ""

    def run(self) -> None:
        try:
            figures = self._measure()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            figures = {"error": self.error}
        self.out.write_text(json.dumps(figures), encoding="utf-8")
        with contextlib.suppress(Exception):  # the app has gone already
            self.app.call_from_thread(self.app.exit)

    def _wait(self, what: str, check: Any) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not check():
            if time.monotonic() > deadline:
                raise RwqError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def _panels(self) -> dict[str, Any]:
        try:
            from rwq.tui.panels import PanelsView

            view = self.app.query_one(PanelsView)
        except Exception:  # not mounted yet
            return {}
        return dict(view.panels)

    def _tab(self) -> str:
        from textual.widgets import TabbedContent

        try:
            return str(self.app.query_one(TabbedContent).active)
        except Exception:  # not mounted yet
            return ""

    def _grid(self) -> None:
        from textual.containers import VerticalScroll

        from rwq.tui.panels import PanelsView

        view = self.app.query_one(PanelsView)
        if view.tabs_layout:
            view.action_layout()
        view.query_one("#panel-grid", VerticalScroll).styles.grid_size_columns = self.columns

    def _measure(self) -> dict[str, Any]:
        from rwq.plugins.engine.lifecycle import PluginState

        manager = self.host
        active = PluginState.ACTIVE
        self._wait("the plugins to load", lambda: all(
            manager.state(n) is active for n in self.names if n in manager.plugins()
        ) and set(self.names) <= set(manager.plugins()))  # fmt: skip
        self._wait("the panels", lambda: set(self.names) <= set(self._panels()))
        self._wait("the queues view", lambda: self._tab() == "queues")
        self.ready.touch()  # the parent presses 4 (the panels view) on the terminal
        self._wait("the panels view (key 4)", lambda: self._tab() == "panels")
        self.app.call_from_thread(self._grid)
        panels = self._panels()
        self._wait("every panel's first frame", lambda: all(
            p.frame is not None and p.painted for p in panels.values()
        ))  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while hidden := [n for n, p in panels.items() if not _on_screen(self.app, p)]:
            if time.monotonic() > deadline:  # the layout settles after the first frames
                raise RwqError(f"panels off screen: {', '.join(hidden)}")
            time.sleep(0.05)

        Path(self.go).touch()  # the parent starts adding the events
        time.sleep(self.warmup)
        start = _Mark.take(self)
        time.sleep(self.seconds)
        end = _Mark.take(self)
        return self._figures(start, end)

    def _figures(self, start: _Mark, end: _Mark) -> dict[str, Any]:
        window = end.at - start.at
        cpu = (end.cpu - start.cpu) / window * 100
        host = (end.host_cpu - start.host_cpu) / window * 100
        sandbox = (end.sandbox_cpu - start.sandbox_cpu) / window * 100
        delivered = (end.delivered - start.delivered) / window / len(self.names)
        shown = sorted((end.shown[k] - start.shown.get(k, 0)) / window for k in end.shown)
        painted = sorted((end.painted[k] - start.painted.get(k, 0)) / window for k in end.painted)
        render_ms = _tail(end.render_ms, end.renders - start.renders)
        view_ms = _tail(end.view_ms, end.renders - start.renders)
        paint_ms = [
            x
            for k, times in end.paint_ms.items()
            for x in _tail(times, end.painted[k] - start.painted.get(k, 0))
        ]
        render_p99 = _percentile(render_ms, 0.99) if render_ms else math.inf
        return {
            "panels": len(self.names),
            "rate_per_panel": self.rate,
            "window_s": round(window, 3),
            "events_delivered_per_panel_per_s": round(delivered, 1),
            "ui_cpu_pct": round(cpu, 1),
            "ui_cpu_pct_by_thread": _by_thread(start.threads, end.threads, window),
            "plugin_host_cpu_pct_by_thread": _by_thread(
                start.host_threads, end.host_threads, window
            ),
            "plugin_host_cpu_pct": round(host, 1),
            "tui_cpu_pct": round(cpu + host, 1),
            "sandboxes_cpu_pct": round(sandbox, 1),
            "frames_shown_per_panel_per_s": _spread(shown),
            "paints_per_panel_per_s": _spread(painted),
            "render_ms": _ms(render_ms),
            "render_view_ms": _ms(view_ms),
            "paint_ms": _ms(paint_ms),
            "targets": {
                "ui_cpu_under_50_pct": cpu < 50,
                "tui_cpu_under_50_pct": cpu + host < 50,
                "render_p99_under_2_ms": render_p99 < 2,
            },
        }


@dataclass
class _Mark:
    """The counters at one moment (of the TUI process, of its panels and their renderer)."""

    at: float
    cpu: float
    """CPU seconds of the UI process (every thread)."""
    host_cpu: float
    """CPU seconds of the plugin host process."""
    sandbox_cpu: float
    delivered: int
    """Events handed to the bench's plugins so far."""
    shown: dict[str, int]
    painted: dict[str, int]
    paint_ms: dict[str, list[float]]
    render_ms: list[float]
    view_ms: list[float]
    renders: int
    threads: dict[str, float]
    """CPU seconds by thread name (threads of one name summed: the plugin dispatchers)."""
    host_threads: dict[str, float]
    """The same for the plugin host process."""

    @classmethod
    def take(cls, load: _Load) -> _Mark:
        from rwq.plugins.runtimes.sandbox import cpu_seconds
        from rwq.tui.panels import PanelsView

        usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
        names = set(load.names)
        panels = load._panels()
        renderer = load.app.query_one(PanelsView).renderer
        render_ms, view_ms, renders = renderer.stats()
        snapshot = [s for s in load.host.snapshot() if s.name in names]
        return cls(
            at=time.monotonic(),
            cpu=usage.ru_utime + usage.ru_stime,
            host_cpu=cpu_seconds(load.host.process.pid) or 0.0,
            sandbox_cpu=sum(s.cpu_seconds for s in snapshot),
            delivered=sum(s.events_delivered for s in snapshot),
            shown={k: p.shown for k, p in panels.items()},
            painted={k: p.painted for k, p in panels.items()},
            paint_ms={k: list(p.paint_ms) for k, p in panels.items()},
            render_ms=render_ms,
            view_ms=view_ms,
            renders=renders,
            threads=thread_cpu(),
            host_threads=load.host.call("thread_cpu"),
        )


def _by_thread(start: dict[str, float], end: dict[str, float], window: float) -> dict[str, float]:
    """% of a core each thread used in the window, busiest first."""
    used = {name: end[name] - start.get(name, 0.0) for name in end}
    ranked = sorted(used.items(), key=lambda item: -item[1])
    return {name: round(seconds / window * 100, 1) for name, seconds in ranked}


def _tail(values: list[float], count: int) -> list[float]:
    """The last ``count`` values (those of the window)."""
    return values[len(values) - min(count, len(values)) :] if count > 0 else []


def _on_screen(app: Any, panel: Any) -> bool:
    region = panel.region
    size = app.size
    return bool(region.area) and region.right <= size.width and region.bottom <= size.height


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"min": 0.0, "median": 0.0, "max": 0.0}
    return {
        "min": round(values[0], 1),
        "median": round(values[len(values) // 2], 1),
        "max": round(values[-1], 1),
    }


def _ms(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "count": len(values),
        "p50": round(_percentile(values, 0.5), 3),
        "p99": round(_percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }
