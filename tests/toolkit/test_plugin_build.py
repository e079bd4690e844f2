"""``rwq plugin build``: the library's result, and the command's answers when the toolchain
is missing (PATH without it), the compiler fails, or the path is no plugin."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from toolchain import NODE_MODULES, needs_clang, rwq

from rwq.toolkit.build import ToolchainMissing, build_plugin, detect_language
from rwq.toolkit.scaffold import new_plugin


def test_a_c_build_returns_its_module_output_and_duration(tmp_path: Path) -> None:
    needs_clang()
    plugin = new_plugin("built", "c", tmp_path).path
    assert detect_language(plugin) == ("c", plugin / "main.wasm")
    result = build_plugin(plugin)
    assert result.ok, result.output
    assert result.artifact == plugin / "main.wasm"
    assert result.artifact.read_bytes()[:4] == b"\0asm"
    assert result.duration > 0 and result.language == "c"
    assert "-mexec-model=reactor" in result.command and "--target=wasm32-wasi" in result.command
    # build.sh, for a machine without rwq, builds the same module
    scripted = subprocess.run([str(plugin / "build.sh")], capture_output=True, timeout=120)
    assert scripted.returncode == 0, scripted.stderr
    assert (plugin / "main.wasm").read_bytes() == result.artifact.read_bytes()


def test_starlark_has_nothing_to_build(tmp_path: Path) -> None:
    plugin = new_plugin("scripted", "starlark", tmp_path).path
    result = build_plugin(plugin)
    assert result.ok and result.artifact is None and result.command == ()
    done = rwq("plugin", "build", str(plugin))
    assert done.returncode == 0, done.stderr
    assert "nothing to build" in done.stdout


def test_a_missing_c_compiler_names_what_to_install(tmp_path: Path) -> None:
    plugin = new_plugin("no-clang", "c", tmp_path).path
    bare = tmp_path / "bin"
    bare.mkdir()
    with pytest.raises(ToolchainMissing, match="clang not found on PATH"):
        build_plugin(plugin, env={"PATH": str(bare)})
    done = rwq("plugin", "build", str(plugin), path=str(bare))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "clang not found on PATH" in line and "clang lld wasi-libc" in line
    assert "make toolchains" in line and "Traceback" not in done.stderr
    assert not (plugin / "main.wasm").exists()


def test_a_missing_linker_names_what_to_install(tmp_path: Path) -> None:
    needs_clang()
    plugin = new_plugin("no-linker", "c", tmp_path).path
    only_clang = tmp_path / "bin"
    only_clang.mkdir()
    (only_clang / "clang").symlink_to(shutil.which("clang") or "clang")
    done = rwq("plugin", "build", str(plugin), path=str(only_clang))
    assert done.returncode == 1
    assert "wasm-ld" in done.stderr and "lld" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_node_or_compiler_for_assemblyscript_says_what_to_run(tmp_path: Path) -> None:
    plugin = new_plugin("no-node", "assemblyscript", tmp_path).path
    bare = tmp_path / "bin"
    bare.mkdir()
    done = rwq("plugin", "build", str(plugin), path=str(bare))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "node not found on PATH" in line and "Node.js" in line and "npm ci" in line

    node = shutil.which("node")
    if node is None:
        pytest.fail("node builds AssemblyScript plugins: run `make toolchains`")
    (bare / "node").symlink_to(node)
    done = rwq("plugin", "build", str(plugin), path=str(bare))  # node, but no npm ci yet
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "asc" in line and f"npm ci in {plugin}" in line


def test_a_compiler_error_is_shown_as_the_compiler_wrote_it(tmp_path: Path) -> None:
    needs_clang()
    plugin = new_plugin("broken", "c", tmp_path).path
    with (plugin / "main.c").open("a", encoding="utf-8") as source:
        source.write("\nstatic int broken(void) { return undeclared_name; }\n")
    done = rwq("plugin", "build", str(plugin))
    assert done.returncode == 1
    assert "main.c:" in done.stderr and "undeclared_name" in done.stderr
    assert "the c build of" in done.stderr and "Traceback" not in done.stderr
    as_json = json.loads(rwq("plugin", "build", str(plugin), "--json").stdout)
    assert as_json["ok"] is False and "undeclared_name" in as_json["output"]
    assert as_json["artifact"] is None


def test_an_assemblyscript_compiler_error_exits_1_with_its_output(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (NODE_MODULES / "assemblyscript").is_dir():
        pytest.fail("the AssemblyScript compiler is needed: run `make toolchains`")
    plugin = new_plugin("broken-as", "assemblyscript", tmp_path).path
    (plugin / "node_modules").symlink_to(NODE_MODULES)
    with (plugin / "main.ts").open("a", encoding="utf-8") as source:
        source.write("\nconst wrong: i32 = 'text';\n")
    done = rwq("plugin", "build", str(plugin))
    assert done.returncode == 1
    assert "main.ts" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "has no manifest.yaml"),
        (lambda p: p.write_text("x", encoding="utf-8"), "is not a directory"),
    ],
)
def test_build_refuses_what_is_not_a_plugin_with_exit_2(
    tmp_path: Path, make: object, needle: str
) -> None:
    target = tmp_path / "thing"
    make(target)  # type: ignore[operator]
    done = rwq("plugin", "build", str(target))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert str(target) in line and needle in line


def test_a_wasm_plugin_without_sources_is_refused(tmp_path: Path) -> None:
    plugin = new_plugin("no-source", "c", tmp_path).path
    (plugin / "main.c").unlink()
    done = rwq("plugin", "build", str(plugin))
    assert done.returncode == 2 and "no sources to build main.wasm" in done.stderr
