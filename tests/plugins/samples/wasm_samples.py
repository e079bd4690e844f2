"""Helpers of the WASM sample plugin tests (tenant-sla-monitor, alert-manager): building them
from source, running them in a real plugin manager, reading what they render, and an event
stream of the demo workload."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from manager_host import Host
from sample_panels import find, validated

from rwq.demo.workload import PROFILES, DemoHandler, TenantProfile
from rwq.plugins.contract.ui import validate_elements
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.runtimes.wasm import WasmRuntime
from rwq.queue.job import Job
from rwq.queue.worker import PermanentFailure
from rwq.samples import SAMPLES_DIR

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = SAMPLES_DIR
SDK = ROOT / "sdk"
FIXTURES = Path(__file__).parent / "fixtures"
WAIT = 30.0

SLA = "tenant-sla-monitor"
ALERTS = "alert-manager"
GRANTS = {
    SLA: ("events.subscribe", "admin.queue.peek", "admin.alerts.send"),
    ALERTS: ("events.subscribe", "storage.read", "storage.write", "ui.notifications"),
}
T0 = 1_790_000_000_000
"""Epoch ms the fixtures start at."""


def one(elements: Any, kind: str, **fields: Any) -> dict[str, Any]:
    found = find(elements, kind, **fields)
    assert len(found) == 1, (kind, fields, elements)
    return found[0]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- building --------------------------------------------------------------------------------


def build(name: str, dest: Path) -> Path:
    """Copy the bundle of plugin ``name`` to ``dest`` and rebuild its main.wasm from source
    with src/rwq/samples/build.sh (the SDKs' toolchains); returns the bundle directory."""
    shutil.copytree(PLUGINS / name, dest, ignore=shutil.ignore_patterns("main.wasm"))
    if shutil.which("clang") is None or shutil.which("node") is None:
        pytest.fail("clang and node are needed to build the sample plugins: run `make toolchains`")
    result = subprocess.run(
        [str(PLUGINS / "build.sh"), name, str(dest / "main.wasm")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dest


# -- a real manager over the built bundles ---------------------------------------------------


def install(host: Host, *names: str, source: Path = PLUGINS) -> None:
    """Copy bundles into the host's plugins dir and grant what they ask for."""
    for name in names:
        shutil.copytree(source / name, host.root / name, ignore=shutil.ignore_patterns("src"))
        host.grant(host.root / name, *GRANTS[name])


def wasm_manager(host: Host, tmp_path: Path, **kw: Any) -> PluginManager:
    """A started manager with the real WASM runtime over the host's plugins dir."""
    kw.setdefault("feeds", False)
    kw.setdefault("element_validator", validate_elements)  # as the TUI checks them
    runtime = WasmRuntime(cache_dir=tmp_path / "wasm-cache")
    manager = PluginManager(host.settings, {"wasm": runtime}, host.client, **kw)
    host.managers.append(manager)
    manager.start()
    return manager


def health(manager: PluginManager, name: str) -> dict[str, Any]:
    return dict(manager.health(name).detail or {})


def render(manager: PluginManager, name: str, width: int = 100, height: int = 30) -> list[Any]:
    result = manager.render(name, width, height, focused=True)
    assert result.error is None, result.error
    return validated(result.elements)


# -- events ----------------------------------------------------------------------------------


def write_jsonl(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def job_event(kind: str, tenant: str, ts: float, ms: float | None = None, **data: Any) -> dict:
    body: dict[str, Any] = {"job_id": data.pop("job_id", f"{tenant}-{ts:.0f}"), "tenant": tenant}
    if ms is not None:
        body["duration_ms"] = ms
    body.update(data)
    return {"type": kind, "queue": f"tenant.{tenant}", "ts": ts, "data": body}


def demo_events(
    seconds: int, rate: float, seed: int, profiles: Iterable[TenantProfile] = PROFILES
) -> list[dict[str, Any]]:
    """The job events ``rwq demo`` would publish over ``seconds`` at ``rate`` jobs/s: each
    tenant's share of the jobs run through the demo's own handler (its run times and
    failures), failed runs retried up to the tenant's ``max_retries`` a second later, then
    dead-lettered; a queue.stats sample per tenant every 5 s."""
    rng = random.Random(seed)
    slept: list[float] = []
    handler = DemoHandler(random.Random(seed + 1), sleep=slept.append)
    events: list[dict[str, Any]] = []
    retries: list[tuple[int, TenantProfile, Job]] = []
    owed = {p.name: 0.0 for p in profiles}
    n = 0
    for second in range(seconds):
        due = [(p, j) for s, p, j in retries if s == second]
        retries = [r for r in retries if r[0] != second]
        for profile in profiles:
            owed[profile.name] += rate * profile.share
            while owed[profile.name] >= 1:
                owed[profile.name] -= 1
                n += 1
                payload = profile.payload(rng)
                job = Job(f"j{n}", profile.queue, payload, tenant=profile.name,
                          max_retries=profile.max_retries)  # fmt: skip
                due.append((profile, job))
        for profile, job in due:
            job.attempts += 1
            ts = T0 + second * 1000 + rng.randrange(1000)
            fields = {"job_id": job.id, "attempt": job.attempts, "worker": "w1"}
            try:
                handler(job)  # sleeps (records) the run time, raises the failure
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                events.append(
                    job_event(
                        "job.failed", profile.name, ts, slept[-1] * 1000, error=error, **fields
                    )
                )
                if isinstance(exc, PermanentFailure) or job.attempts > job.max_retries:
                    events.append(
                        job_event("job.dead_lettered", profile.name, ts + 1, error=error,
                                  job_id=job.id, attempt=job.attempts)
                    )  # fmt: skip
                else:
                    retries.append((second + 1, profile, job))
            else:
                events.append(
                    job_event("job.completed", profile.name, ts, slept[-1] * 1000, **fields)
                )
        if second % 5 == 4:
            for profile in profiles:
                events.append(
                    {"type": "queue.stats", "queue": profile.queue, "ts": T0 + second * 1000 + 999,
                     "data": {"pending": 0, "processing": 1, "oldest_pending_age_s": None}}
                )  # fmt: skip
    events.sort(key=lambda e: e["ts"])
    return events


def table_rows(elements: list[Any]) -> dict[str, dict[str, Any]]:
    """The SLA table as {tenant: {column: cell, "_style": row style}}."""
    table = one(elements, "table", id="tenants")
    styles = table.get("row_styles") or [None] * len(table["rows"])
    return {
        row[0]: {**dict(zip(table["columns"], row, strict=True)), "_style": style}
        for row, style in zip(table["rows"], styles, strict=True)
    }
