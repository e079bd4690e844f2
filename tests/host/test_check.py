"""``rwq plugin check``: the headless harness on the SDK's hello plugins and hostile ones
written here, against the session's Valkey; the CLI's exit codes through real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from rwq.config import Settings
from rwq.host.check import EventsFileError, check_plugin, read_events

ROOT = Path(__file__).parents[2]
SDK = ROOT / "sdk"


def rwq(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    return subprocess.run(
        [sys.executable, "-m", "rwq", "--redis-url", url, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def write_events(path: Path, *lines: object) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def starlark_plugin(root: Path, name: str, source: str, **manifest: object) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    data = {
        "name": name,
        "version": "1.0.0",
        "api_version": "v1",
        "runtime": "starlark",
        "entry_point": "main.star",
        "permissions": [],
        "events": [{"type": "job.*"}],
        "resources": {"timeout": "500ms"},
        **manifest,
    }
    (directory / "manifest.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (directory / "main.star").write_text(source, encoding="utf-8")
    return directory


def job_events(n: int) -> list[dict[str, object]]:
    kinds = ("job.completed", "job.failed")
    return [
        {"type": kinds[i % 2], "queue": "emails", "data": {"job_id": f"j{i}"}} for i in range(n)
    ]


LOOPS_ON_EVENT = """
def on_event(events):
    n = 0
    for i in range(1 << 30):
        for j in range(1 << 30):
            n += 1
    return {"changed": True}

def render(size):
    return [{"type": "text", "text": "never changes"}]
"""

STORES_WITHOUT_GRANT = """
def render(size):
    result = rwq.storage_set("k", "v")
    return [{"type": "text", "text": "denied" if rwq.is_error(result) else "stored"}]
"""


def test_starlark_hello_runs_clean(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    events = read_events(write_events(tmp_path / "events.jsonl", *job_events(5)))
    report = check_plugin(
        settings,
        SDK / "starlark" / "hello",
        grants=["events.subscribe"],
        events=events,
        batch_size=2,
        client=redis_client,
    )
    assert report.status == "ok", report.to_dict()
    assert report.exit_code == 0
    assert report.hooks["on_event"].calls == 3  # 2 + 2 + 1
    assert report.hooks["render"].calls == 4  # once loaded, then after each batch
    assert report.hooks["initialize"].calls == 1
    assert report.events["handed"] == 5
    assert report.render is not None
    assert report.render[0] == {"type": "text", "text": "hello: 5 events of 2 types"}
    assert report.faults == [] and report.errors == []
    assert report.resources["peak_memory_bytes"] > 0
    assert report.load_ms > 0
    out = report.to_dict()
    assert out["permissions"]["granted"] == ["events.subscribe"]
    assert json.loads(json.dumps(out))["hooks"]["on_event"]["calls"] == 3


def test_ungranted_permissions_are_denied_and_the_plugin_still_runs(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    events = read_events(write_events(tmp_path / "events.jsonl", *job_events(3)))
    report = check_plugin(settings, SDK / "starlark" / "hello", events=events, client=redis_client)
    assert report.status == "ok", report.to_dict()
    assert report.permissions["denied"] == ["events.subscribe"]
    assert report.events["handed"] == 0 and "on_event" not in report.hooks
    assert report.render is not None


def test_a_plugin_looping_in_on_event_is_faulted_with_a_timeout(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    plugin = starlark_plugin(tmp_path, "looper", LOOPS_ON_EVENT, permissions=["events.subscribe"])
    events = read_events(write_events(tmp_path / "events.jsonl", *job_events(2)))
    report = check_plugin(settings, plugin, grants=["observer"], events=events, client=redis_client)
    assert report.status == "faulted", report.to_dict()
    assert report.exit_code == 1
    assert [(f.kind, f.hook) for f in report.faults][:1] == [("timeout", "on_event")]
    assert report.render == [{"type": "text", "text": "never changes"}]  # before the fault


def test_cli_exit_1_for_a_contained_fault(valkey_url: str, tmp_path: Path) -> None:
    plugin = starlark_plugin(tmp_path, "looper", LOOPS_ON_EVENT, permissions=["events.subscribe"])
    events = write_events(tmp_path / "events.jsonl", *job_events(1))
    result = rwq(
        "plugin", "check", str(plugin), "--grant", "events.subscribe", "--events", str(events),
        "--json", url=valkey_url,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "faulted"
    assert report["faults"][0]["kind"] == "timeout"


def test_cli_exit_2_for_a_malformed_events_line(valkey_url: str, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "events.jsonl", *job_events(2), '{"type": "job.completed", oops}'
    )
    result = rwq(
        "plugin", "check", str(SDK / "starlark" / "hello"), "--events", str(events),
        url=valkey_url,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{events}:3" in result.stderr
    assert "Traceback" not in result.stderr


def test_events_file_errors_name_the_line(tmp_path: Path) -> None:
    path = write_events(tmp_path / "e.jsonl", {"type": "job.completed"}, "", {"type": "nope"})
    with pytest.raises(EventsFileError) as caught:
        read_events(path)
    assert caught.value.line == 3 and "nope" in str(caught.value)


def test_an_ungranted_host_call_is_audited_as_denied(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    plugin = starlark_plugin(tmp_path, "sneaky", STORES_WITHOUT_GRANT, events=[])
    report = check_plugin(settings, plugin, client=redis_client)
    assert report.status == "ok", report.to_dict()
    assert report.render == [{"type": "text", "text": "denied"}]
    denied = [a for a in report.audit if not a["allowed"]]
    assert denied and denied[0]["operation"] == "storage.write:storage_set"
    # The user's state dir was not touched: grants and audit live in a temporary one.
    assert not (settings.state_dir / "plugins").exists()


def test_a_check_leaves_no_data_in_redis(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Storage written during a check goes under a private prefix that is removed after."""
    plugin = starlark_plugin(
        tmp_path, "keeper", STORES_WITHOUT_GRANT, events=[], permissions=["storage.write"]
    )
    report = check_plugin(settings, plugin, grants=["storage.write"], client=redis_client)
    assert report.render == [{"type": "text", "text": "stored"}], report.to_dict()
    assert redis_client.dbsize() == 0


def test_a_grant_wider_than_the_manifest_asks_is_refused(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """--grant used to give a plugin whatever it named, asked for or not."""
    plugin = starlark_plugin(tmp_path, "sneaky", STORES_WITHOUT_GRANT, events=[])
    report = check_plugin(settings, plugin, grants=["storage.write"], client=redis_client)
    assert report.status == "invalid" and report.exit_code == 2
    assert report.errors == [
        "sneaky does not ask for storage.write (its manifest asks for: nothing)"
    ]


def test_an_invalid_bundle_is_invalid(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    report = check_plugin(settings, tmp_path / "empty")
    assert report.status == "invalid" and report.exit_code == 2
    assert report.errors


def test_c_hello_runs_clean(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    if shutil.which("clang") is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld are needed to build C plugins: run `make toolchains`")
    plugin = tmp_path / "hello"
    shutil.copytree(SDK / "c" / "hello", plugin)
    build = subprocess.run(
        [str(SDK / "c" / "build.sh"), str(plugin)], capture_output=True, text=True, timeout=120
    )
    assert build.returncode == 0, build.stderr
    events = read_events(write_events(tmp_path / "events.jsonl", *job_events(4)))
    report = check_plugin(
        settings, plugin, grants=["events.subscribe"], events=events, client=redis_client
    )
    assert report.status == "ok", report.to_dict()
    assert report.hooks["on_event"].calls == 1
    assert report.events["handed"] == 4
    assert report.render
    assert report.resources["peak_memory_bytes"] > 0


COUNTS_LABELS = """
def on_event(events):
    state.set("seen", state.get("seen", 0) + len(events))
    state.set("last", events[-1]["data"].get("labels", {}).get("type", ""))
    return {"changed": True}

def render(size):
    text = "%d events, last %s" % (state.get("seen", 0), state.get("last", ""))
    return [{"type": "text", "text": text}]
"""


def test_a_lone_surrogate_in_event_data_does_not_cost_the_batch(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A payload label of "\\ud800" made every subscribed Starlark plugin trap ("unexpected
    end of hex escape") and lose its batch."""
    plugin = starlark_plugin(tmp_path, "labels", COUNTS_LABELS, permissions=["events.subscribe"])
    lines = [{"type": "job.completed", "queue": "q", "data": {"job_id": "j1",
              "labels": {"type": "ok \ud800 \U0001f600"}}}, *job_events(2)]  # fmt: skip
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    report = check_plugin(settings, plugin, grants=["events.subscribe"], events=read_events(events),
                          batch_size=3, client=redis_client)  # fmt: skip
    assert report.status == "ok", report.to_dict()
    assert report.render == [{"type": "text", "text": "3 events, last "}]
    report = check_plugin(settings, plugin, grants=["events.subscribe"],
                          events=read_events(events)[:1], client=redis_client)  # fmt: skip
    assert report.render == [{"type": "text", "text": "1 events, last ok \ufffd \U0001f600"}]


def test_a_seed_gives_the_plugins_admin_calls_something_to_see(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A check ran under a private prefix: admin calls saw no queues. --seed creates jobs and
    dead letters there first (and they go with the prefix afterwards)."""
    from rwq.plugins.ops.seed import SeedFileError, read_seed
    from rwq.samples import SAMPLES_DIR

    seed = tmp_path / "seed.jsonl"
    seed.write_text(
        "# two dead letters and a pending job\n"
        '{"queue": "tenant.acme", "payload": {"n": 1}, "tenant": "acme", "state": "dead",'
        ' "error": "boom"}\n'
        '{"queue": "tenant.acme", "payload": {"n": 2}, "tenant": "acme", "state": "dead"}\n'
        '{"queue": "tenant.acme", "payload": {"n": 3}}\n',
        encoding="utf-8",
    )
    keys_before = set(redis_client.keys("*"))
    report = check_plugin(
        settings, SAMPLES_DIR / "bulk-operations", client=redis_client, seed=read_seed(seed),
        grants=["admin.queue.peek", "admin.queue.requeue", "admin.queue.purge",
                "events.subscribe"],
    )  # fmt: skip
    assert report.status == "ok", report.to_dict()
    assert "2 dead letters in tenant.*" in json.dumps(report.render)
    assert set(redis_client.keys("*")) == keys_before  # the seed went with the prefix
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"queue": "q"}\n{"queue": "q", "payload": 1, "state": "gone"}\n')
    with pytest.raises(SeedFileError, match=r"bad.jsonl:1: 'queue' \(a string\) and 'payload'"):
        read_seed(bad)
