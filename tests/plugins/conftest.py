"""Fixtures shared by the plugin manager and hot-reload tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from manager_host import Host

from rwq.config import Settings


@pytest.fixture
def host(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Host]:
    """A plugins dir, the fake runtime, and every manager made from it stopped afterwards."""
    root = tmp_path / "plugins"
    root.mkdir()
    h = Host(settings.replace(plugin_dirs=str(root)), redis_client, root)
    yield h
    for manager in h.managers:
        manager.stop()
