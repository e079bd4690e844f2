"""The counter plugin hosted by a real plugin host process, for the tests of the remote host and
of the TUI over it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from rwq.config import Settings
from rwq.host.remote import RemotePluginHost

FIXTURES = Path(__file__).parent / "tui" / "fixtures"
PLUGIN = "counter"
PERMISSIONS = ["ui.notifications", "storage.read"]
POLICY = """\
plugins:
  counter:
    grant: [ui.notifications, storage.read]
"""


def counter_settings(settings: Settings, tmp_path: Path) -> Settings:
    """``settings`` with a plugins dir holding only the counter."""
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES / "counter", root / "counter")
    return settings.replace(plugin_dirs=str(root))


def granting_policy(tmp_path: Path) -> Path:
    """A policy file granting the counter what it asks for."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def running(settings: Settings, policy: Path | None) -> Iterator[RemotePluginHost]:
    """A started plugin host process, stopped (killed if it must be) afterwards."""
    host = RemotePluginHost(settings, policy_path=policy, watch=False)
    try:
        host.start()
        yield host
    finally:
        host.stop()
        if host.process is not None and host.process.poll() is None:  # never leave it behind
            host.process.kill()
            host.process.wait()
