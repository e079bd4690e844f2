"""The AssemblyScript SDK: sdk/assemblyscript/hello built with build.sh and run through the
headless harness (``check_plugin``) against the session's Valkey."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from rwq.config import Settings
from rwq.host.check import check_plugin, read_events

SDK = Path(__file__).parents[2] / "sdk" / "assemblyscript"
ASC = SDK / "node_modules" / ".bin" / "asc"


def build(plugin: Path) -> Path:
    if shutil.which("node") is None or not ASC.exists():
        pytest.fail(
            "node and the AssemblyScript compiler are needed to build AssemblyScript plugins: "
            "run `make toolchains`"
        )
    result = subprocess.run(
        [str(SDK / "build.sh"), str(plugin)], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    return plugin / "main.wasm"


def test_assemblyscript_hello_runs_clean(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    plugin = tmp_path / "hello"
    shutil.copytree(SDK / "hello", plugin, ignore=shutil.ignore_patterns("main.wasm"))
    assert build(plugin).stat().st_size > 0
    kinds = ["job.completed", "job.failed", "job.completed", "job.completed", "job.failed"]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(
        "".join(
            json.dumps({"type": kind, "queue": "emails", "data": {"job_id": f"j{i}"}}) + "\n"
            for i, kind in enumerate(kinds)
        ),
        encoding="utf-8",
    )
    report = check_plugin(
        settings,
        plugin,
        grants=["events.subscribe"],
        events=read_events(events_file),
        batch_size=2,
        client=redis_client,
    )
    assert report.status == "ok", report.to_dict()
    assert report.faults == [] and report.errors == []
    assert report.hooks["initialize"].calls == 1
    assert report.hooks["on_event"].calls == 3  # 2 + 2 + 1
    assert report.events["handed"] == 5
    assert report.render == [
        {"type": "text", "text": "hello: 5 events of 2 types"},
        {
            "type": "table",
            "columns": ["type", "count"],
            "rows": [["job.completed", 3], ["job.failed", 2]],
        },
    ]
    # initialize's rwq.log went through the host, allowed
    assert any(a["operation"].endswith("log") and a["allowed"] for a in report.audit), report.audit


def test_assemblyscript_strings_cross_as_utf8(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Config text with quotes, escapes and non-ASCII characters is decoded from UTF-8 JSON
    and written back out as valid UTF-8 JSON."""
    plugin = tmp_path / "hello"
    shutil.copytree(SDK / "hello", plugin, ignore=shutil.ignore_patterns("main.wasm"))
    manifest = plugin / "manifest.yaml"
    greeting = 'héllo "wörld"\t✓ 😀'
    text = manifest.read_text(encoding="utf-8").replace(
        "greeting: hello", f"greeting: {json.dumps(greeting)}"
    )
    manifest.write_text(text, encoding="utf-8")
    build(plugin)
    report = check_plugin(settings, plugin, client=redis_client)
    assert report.status == "ok", report.to_dict()
    assert report.render is not None
    assert report.render[0] == {"type": "text", "text": f"{greeting}: 0 events of 0 types"}


def test_the_assemblyscript_sdk_writes_every_ui_element(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The AssemblyScript SDK had helpers for text, badge, kv and table only, as the C SDK."""
    from rwq.plugins.contract.ui import TYPES

    plugin = tmp_path / "as-every-element"
    shutil.copytree(Path(__file__).parent / "runtimes" / "assemblyscript" / "every_element", plugin)
    build(plugin)
    report = check_plugin(settings, plugin, client=redis_client)
    assert report.status == "ok", report.to_dict()
    assert report.render is not None
    [rows] = report.render
    children = rows["children"]
    assert {c["type"] for c in children} | {"rows"} == set(TYPES)
    assert [c for c in children if c["type"] == "gauge"] == [
        {"type": "gauge", "value": 6.8323, "max": 100, "warn": 50, "crit": 90, "label": "load"},
        {"type": "gauge", "value": 3, "label": "bare"},
    ]
    assert [c for c in children if c["type"] == "button"] == [
        {"type": "button", "id": "go", "label": "Go", "key": "g", "variant": "primary"},
        {"type": "button", "id": "plain", "label": "Plain"},
    ]
    list_ = next(c for c in children if c["type"] == "list")
    assert list_ == {"type": "list", "id": "queues", "title": "Queues",
                     "items": ["emails", "reports"], "selected": 1}  # fmt: skip
    columns = next(c for c in children if c["type"] == "columns")
    assert columns["widths"] == [1, 2] and rows["gap"] == 1


def test_the_assemblyscript_json_reader_reads_what_python_wrote(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The SDK's Json views (no tree: get scans, at uses offsets noted once, strings decoded on
    read) read config and events back exactly; a copy() reads the same after its hook, the
    argument itself as null; malformed text reads as null."""
    plugin = tmp_path / "as-json-reader"
    shutil.copytree(Path(__file__).parent / "runtimes" / "assemblyscript" / "json_reader", plugin)
    build(plugin)
    events = [
        {"type": "job.completed", "queue": 'é"q', "data": {"job_id": "j1", "attempt": 2}},
        {"type": "job.failed", "queue": "😀", "data": {"error": "line\nbreak\u0001", "n": [1.5]}},
    ]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    report = check_plugin(
        settings,
        plugin,
        grants=["events.subscribe"],
        events=read_events(events_file),
        batch_size=2,
        client=redis_client,
    )
    assert report.status == "ok", report.to_dict()
    assert report.render is not None
    texts = [element["text"] for element in report.render]
    config = json.loads(texts[0])
    listed = [1, -2.5, 300, 1e-7, 0, True, False, None, "", "tab\there", "😀 é \\ /"]
    assert config['clé "q"'] == listed
    assert config["nested"] == {"a": {"b": [[], {}, [{"c": "deep"}]]}, "empty": {}}
    assert config["big"] == 1733556000123 and config["label"] == "kept ✓"
    handed = json.loads(texts[1])
    assert [{k: e[k] for k in ("type", "queue", "data")} for e in handed] == events
    assert texts[2] == "kept ✓"
    assert texts[3] == "." * 24  # every malformed text reads as null
    assert texts[4] == '[] {} 0 -500 "é😀" true null'
    assert texts[5] == "." * 14  # misses (and the argument after its hook) read as null
