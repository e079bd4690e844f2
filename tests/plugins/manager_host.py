"""A plugin manager over the fake runtime, for the tests of the manager, hot reload, control
and the samples: plugins written into a directory, events published, waiting for a state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import yaml
from fake_runtime import FakeInstance, FakeRuntime

from rwq.config import Settings
from rwq.plugins.contract.events import local_event
from rwq.plugins.engine.lifecycle import (
    FaultPolicy,
)
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.trust.grants import GrantStore, grants_path
from rwq.queue.events import Event

WAIT = 15.0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def job_event(n: int, queue: str = "q") -> Event:
    return local_event("job.completed", {"job_id": f"j{n}"}, source="queue", queue=queue)


def write_plugin(
    root: Path,
    name: str,
    script: dict[str, Any] | None = None,
    *,
    version: str = "1.0.0",
    permissions: list[Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    dependencies: list[dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """A plugin bundle directory ``root/name`` for the fake runtime."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "api_version": "v1",
        "runtime": "starlark",
        "entry_point": "main.star",
        "permissions": permissions or [],
        "events": events or [],
        "dependencies": dependencies or [],
        "config": config or {},
        "resources": {"timeout": "5s"},
    }
    (directory / "manifest.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    (directory / "main.star").write_text(json.dumps(script or {}), encoding="utf-8")
    return directory


def subscriber(root: Path, name: str, script: dict[str, Any] | None = None, **kw: Any) -> Path:
    """A plugin subscribed to ``job.completed`` (and whatever ``events`` adds)."""
    perms = ["events.subscribe", *kw.pop("permissions", [])]
    events = [{"type": "job.completed"}, *kw.pop("events", [])]
    return write_plugin(root, name, script, permissions=perms, events=events, **kw)


class Host:
    """Bundles in a plugins dir, a fake runtime, and managers over them."""

    def __init__(self, settings: Settings, client: redis.Redis, root: Path) -> None:
        self.settings = settings
        self.client = client
        self.root = root
        self.runtime = FakeRuntime()
        self.managers: list[PluginManager] = []

    def grant(self, bundle_dir: Path, *permissions: str, queues: tuple[str, ...] = ("*",)) -> None:
        """Grant ahead of the manager's start, as ``rwq plugin grant`` would."""
        bundle = open_bundle(bundle_dir, extract_dir=self.root.parent / "granted")
        GrantStore(grants_path(self.settings)).grant(
            bundle.name,
            permissions,
            version=str(bundle.version),
            bundle_hash=bundle.sha256,
            queues=queues,
            granted_by="test",
        )

    def manager(self, **kw: Any) -> PluginManager:
        kw.setdefault("feeds", False)
        kw.setdefault("fault_policy", FaultPolicy(backoff_initial=60.0))
        manager = PluginManager(self.settings, {"starlark": self.runtime}, self.client, **kw)
        self.managers.append(manager)
        return manager

    def started(self, **kw: Any) -> PluginManager:
        manager = self.manager(**kw)
        manager.start()
        return manager

    def instance(self, name: str) -> FakeInstance:
        return self.runtime.latest(name)


def publish(manager: PluginManager, events: list[Event]) -> None:
    manager.bus.publish_many(events)


# -- lifecycle ---------------------------------------------------------------------------------
