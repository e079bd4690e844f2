"""``rwq plugin check PATH --abi`` through the real command line: a table (or JSON) of cases,
exit 0 when none failed, 1 when one did, 2 for input it cannot check, named."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import wasmtime

Rwq = Callable[..., subprocess.CompletedProcess[str]]

REPO = Path(__file__).parents[2]
MANIFEST = """\
name: {name}
version: 0.1.0
api_version: v1
description: the smallest plugin of docs/abi.md
runtime: {runtime}
entry_point: {entry}
"""


def doc_example() -> str:
    doc = (REPO / "docs" / "abi.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```wat\n(.*?)```", doc, re.S)
    return str(example)


def plugin(tmp_path: Path, name: str, wat: str | None, runtime: str = "wasm") -> Path:
    root = tmp_path / name
    root.mkdir()
    entry = "main.wasm" if runtime == "wasm" else "main.star"
    (root / "manifest.yaml").write_text(MANIFEST.format(name=name, runtime=runtime, entry=entry))
    if wat is not None:
        (root / entry).write_bytes(wasmtime.wat2wasm(wat))
    elif runtime == "starlark":
        (root / entry).write_text("def render(size):\n    return []\n")
    return root


def test_the_smallest_plugin_of_the_abi_doc_passes(rwq: Rwq, tmp_path: Path) -> None:
    checked = rwq("plugin", "check", str(plugin(tmp_path, "smallest", doc_example())), "--abi")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "smallest 0.1.0: WASM plugin ABI v1 conformance" in checked.stdout
    for case in ("rwq_abi_version", "argument-out-of-memory", "repeated-calls"):
        assert re.search(rf"^\s*{case}\s+pass\s", checked.stdout, re.M), case
    assert re.search(r"^\s*on-event\s+skip\s+not exported: rwq_on_event", checked.stdout, re.M)
    assert "abi: 12 passed, 0 failed, 20 skipped" in checked.stdout


def test_a_failing_case_exits_1_with_its_reason_in_json(rwq: Rwq, tmp_path: Path) -> None:
    memory = '(memory (export "memory") 1)'
    command = doc_example().replace(memory, f'{memory} (func (export "_start"))')
    checked = rwq("plugin", "check", str(plugin(tmp_path, "command", command)), "--abi", "--json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is False and report["plugin"]["name"] == "command"
    cases = {case["name"]: case for case in report["cases"]}
    assert cases["reactor"]["result"] == "fail"
    assert "is a WASI command (exports _start); build it as a reactor" in cases["reactor"]["reason"]
    assert report["counts"]["fail"] == 1


def test_input_it_cannot_check_exits_2_naming_what_to_do(rwq: Rwq, tmp_path: Path) -> None:
    starlark = plugin(tmp_path, "scripted", None, runtime="starlark")
    refused = rwq("plugin", "check", str(starlark), "--abi")
    assert refused.returncode == 2
    assert "is a starlark plugin: --abi checks compiled (WASM) modules" in refused.stderr

    unbuilt = plugin(tmp_path, "unbuilt", None)
    refused = rwq("plugin", "check", str(unbuilt), "--abi", "--json")
    assert refused.returncode == 2
    answer = json.loads(refused.stdout)
    assert answer["ok"] is False and "rwq plugin build" in answer["error"]

    smallest = plugin(tmp_path, "smallest", doc_example())
    refused = rwq("plugin", "check", str(smallest), "--abi", "--grant", "observer")
    assert refused.returncode == 2
    assert "--grant does not combine with it" in refused.stderr
