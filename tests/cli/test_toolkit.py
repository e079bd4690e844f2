"""The plugin author's path through the real command line, in each language: ``rwq plugin
new``, ``build``, then ``check --snapshot`` passing as generated; a changed panel shows as a
diff and ``--update`` writes it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Rwq = Callable[..., subprocess.CompletedProcess[str]]

REPO = Path(__file__).parents[2]
NODE_MODULES = REPO / "sdk" / "assemblyscript" / "node_modules"


def check_args(plugin: Path, *more: str, snapshot: Path | None = None) -> list[str]:
    fixtures = plugin / "fixtures"
    return [
        "plugin", "check", str(plugin), "--grant", "observer",
        "--events", str(fixtures / "events.jsonl"), "--seed", str(fixtures / "seed.jsonl"),
        "--snapshot", str(snapshot or fixtures / "panel.snapshot"), *more,
    ]  # fmt: skip


def toolchain(language: str) -> None:
    if language == "c" and (shutil.which("clang") is None or shutil.which("wasm-ld") is None):
        pytest.fail("clang and wasm-ld build C plugins: run `make toolchains`")
    if language == "assemblyscript" and (
        shutil.which("node") is None or not (NODE_MODULES / "assemblyscript").is_dir()
    ):
        pytest.fail("the AssemblyScript compiler is needed: run `make toolchains`")


@pytest.mark.parametrize("language", ["starlark", "c", "assemblyscript"])
def test_new_build_check_passes_as_generated(rwq: Rwq, tmp_path: Path, language: str) -> None:
    toolchain(language)
    made = rwq("plugin", "new", "failures", "--lang", language, "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    plugin = tmp_path / "failures"
    assert f"created {plugin}" in made.stdout
    if language == "assemblyscript":  # what `npm ci` in the plugin would install
        (plugin / "node_modules").symlink_to(NODE_MODULES)
    built = rwq("plugin", "build", str(plugin))
    assert built.returncode == 0, built.stderr + built.stdout
    if language != "starlark":
        assert (plugin / "main.wasm").read_bytes()[:4] == b"\0asm"
    checked = rwq(*check_args(plugin, "--json"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["status"] == "ok" and report["faults"] == [] and report["errors"] == []
    assert report["snapshot"]["status"] == "match" and report["snapshot"]["size"] == "80x24"
    assert report["permissions"]["granted"] == ["admin.stats.read", "events.subscribe"]


def test_a_changed_panel_is_a_diff_with_exit_1_and_update_rewrites_it(
    rwq: Rwq, tmp_path: Path
) -> None:
    assert rwq("plugin", "new", "drift", "--dir", str(tmp_path)).returncode == 0
    plugin = tmp_path / "drift"
    snapshot = plugin / "fixtures" / "panel.snapshot"
    stored = snapshot.read_text(encoding="utf-8")
    source = plugin / "main.star"
    source.write_text(
        source.read_text(encoding="utf-8").replace('"label": "failure %"', '"label": "fail rate"'),
        encoding="utf-8",
    )
    differs = rwq(*check_args(plugin))
    assert differs.returncode == 1, differs.stderr
    assert "-│ failure % " in differs.stdout and "+│ fail rate " in differs.stdout
    assert f"--- {snapshot} (stored)" in differs.stdout
    assert "differs from" in differs.stderr and "--update" in differs.stderr
    assert snapshot.read_text(encoding="utf-8") == stored  # untouched

    as_json = json.loads(rwq(*check_args(plugin, "--json")).stdout)
    assert as_json["status"] == "ok" and as_json["snapshot"]["status"] == "mismatch"
    assert "+│ fail rate" in as_json["snapshot"]["diff"]

    updated = rwq(*check_args(plugin, "--update"))
    assert updated.returncode == 0, updated.stderr
    assert f"wrote {snapshot}" in updated.stdout
    assert "│ fail rate " in snapshot.read_text(encoding="utf-8")
    assert rwq(*check_args(plugin)).returncode == 0


def test_snapshot_sizes_and_bad_input_exit_2(rwq: Rwq, tmp_path: Path) -> None:
    assert rwq("plugin", "new", "sized", "--dir", str(tmp_path)).returncode == 0
    plugin = tmp_path / "sized"
    wide = tmp_path / "wide.snapshot"
    missing = rwq(*check_args(plugin, snapshot=wide))
    assert missing.returncode == 2
    assert f"{wide} does not exist: run the check with --update" in missing.stderr
    written = rwq(*check_args(plugin, "--size", "120x30", "--update", snapshot=wide))
    assert written.returncode == 0, written.stderr
    lines = wide.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 30 and {len(line) for line in lines} == {120}
    assert rwq(*check_args(plugin, "--size", "120x30", snapshot=wide)).returncode == 0

    bad = rwq(*check_args(plugin, "--size", "80by24"))
    assert bad.returncode == 2 and "--size: expected COLUMNSxROWS" in bad.stderr
    alone = rwq("plugin", "check", str(plugin), "--update")
    assert alone.returncode == 2 and "give the file with --snapshot" in alone.stderr
    for result in (missing, bad, alone):
        assert "Traceback" not in result.stderr


def test_new_refuses_an_existing_directory_and_a_bad_name(rwq: Rwq, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x", encoding="utf-8")
    taken = rwq("plugin", "new", "mine")
    assert taken.returncode == 2
    [line] = taken.stderr.strip().splitlines()
    assert "mine: directory is not empty" in line
    bad = rwq("plugin", "new", "My_Plugin")
    assert bad.returncode == 2 and "invalid plugin name 'My_Plugin'" in bad.stderr
    lang = rwq("plugin", "new", "ok-name", "--lang", "cobol")
    assert lang.returncode == 2 and "--lang: unknown language 'cobol'" in lang.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "state") == ["mine"]
