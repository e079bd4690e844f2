"""``rwq plugin``: real processes on a plugin fixture, in an isolated state dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "plugins" / "fixtures" / "design-example"
SDK_STARLARK_HELLO = Path(__file__).parents[1] / "sdk" / "starlark" / "hello"


def rwq(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    return subprocess.run(
        [sys.executable, "-m", "rwq", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_validate_install_grant_revoke_audit(tmp_path: Path) -> None:
    valid = rwq("plugin", "validate", str(FIXTURE), "--json")
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout)["name"] == "tenant-sla-monitor"

    assert rwq("plugin", "install", str(FIXTURE)).returncode == 0
    again = rwq("plugin", "install", str(FIXTURE))
    assert again.returncode == 1 and "--force" in again.stderr

    granted = rwq(
        "plugin", "grant", "tenant-sla-monitor", "events.subscribe", "--queues", "tenant.*"
    )
    assert granted.returncode == 0, granted.stderr
    [plugin] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert plugin["granted"] == ["events.subscribe"]
    assert set(plugin["pending"]) == {"admin.queue.peek", "admin.alerts.send"}
    # Its required dependency alert-manager is not installed: it cannot load.
    assert plugin["state"] == "refused" and "alert-manager" in plugin["reason"]

    assert rwq("plugin", "revoke", "tenant-sla-monitor").returncode == 0
    [plugin] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert plugin["granted"] == []

    records = json.loads(rwq("plugin", "audit", "--json").stdout)
    assert [r["kind"] for r in records if r["kind"] in {"grant", "revoke"}] == ["grant", "revoke"]


def test_invalid_manifest_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(FIXTURE, bad)
    manifest = bad / "manifest.yaml"
    text = manifest.read_text().replace('version: "1.2.3"', 'version: "one"')
    manifest.write_text(text.replace('max_memory: "10MB"', 'max_memory: "lots"'))
    result = rwq("plugin", "validate", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert str(manifest) in result.stderr
    assert "version" in result.stderr and "resources.max_memory" in result.stderr


def test_grant_unknown_plugin_is_a_clear_error() -> None:
    result = rwq("plugin", "grant", "ghost", "observer")
    assert result.returncode == 1 and "no plugin named 'ghost'" in result.stderr


def test_run_hosts_plugins_headless_with_prometheus_metrics(
    tmp_path: Path, valkey_url: str, redis_client: object
) -> None:
    """`rwq plugin run`: a policy pre-grants, queue events reach the plugin, and its
    figures are on the metrics endpoint."""
    import socket
    import time
    import urllib.request

    plugins = tmp_path / "plugins"
    shutil.copytree(SDK_STARLARK_HELLO, plugins / "hello-starlark")
    policy = tmp_path / "policy.yaml"
    policy.write_text("plugins:\n  hello-starlark:\n    grant: [events.subscribe]\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"RWQ_REDIS_URL": valkey_url, "RWQ_PLUGIN_DIRS": str(plugins)}
    host = subprocess.Popen(
        [sys.executable, "-m", "rwq", "plugin", "run", "--policy", str(policy),
         "--metrics-port", str(port), "--duration", "30s"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        body = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            subprocess.run(
                [sys.executable, "-m", "rwq", "enqueue", "tenant.a", "1"],
                env=env, capture_output=True, timeout=30,
            )  # fmt: skip
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            except OSError:
                time.sleep(0.3)
                continue
            text = body.decode()
            if 'rwq_plugin_calls_total{hook="on_event",plugin="hello-starlark"}' in text:
                break
            time.sleep(0.3)
        text = body.decode() if body else ""
        assert 'rwq_plugin_calls_total{hook="on_event",plugin="hello-starlark"}' in text, text
    finally:
        host.terminate()
        out, err = host.communicate(timeout=30)
    assert host.returncode == 0, err
    assert "hello-starlark: active" in out
