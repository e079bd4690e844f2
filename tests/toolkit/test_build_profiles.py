"""Development builds (``rwq plugin dev``): unoptimized, marked, refused by ``rwq plugin pack``;
every build writes its module whole or not at all; the warm AssemblyScript compiler."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import wasmtime
from toolchain import NODE_MODULES, needs_asc, needs_clang, rwq

from rwq.toolkit.asc import CompilerGone, WarmCompiler
from rwq.toolkit.build import DEV_SECTION, build_plugin, dev_module, is_dev_build
from rwq.toolkit.scaffold import new_plugin


def test_a_dev_build_is_unoptimized_marked_and_still_a_valid_module(tmp_path: Path) -> None:
    needs_clang()
    plugin = new_plugin("profiles", "c", tmp_path).path
    release = build_plugin(plugin)
    assert release.ok and "-O2" in release.command and release.profile == "release"
    assert release.artifact is not None
    released = release.artifact.read_bytes()
    assert not is_dev_build(released) and dev_module(plugin) is None

    dev = build_plugin(plugin, profile="dev")
    assert dev.ok, dev.output
    assert "-O0" in dev.command and "-O2" not in dev.command and dev.profile == "dev"
    module = (plugin / "main.wasm").read_bytes()
    assert is_dev_build(module) and dev_module(plugin) == plugin / "main.wasm"
    assert DEV_SECTION.encode() in module
    wasmtime.Module(wasmtime.Engine(), module)  # the marked module still compiles
    assert [p.name for p in plugin.iterdir() if p.name.startswith(".")] == []
    assert not is_dev_build(b"not a module") and not is_dev_build(released[:12])


def test_a_failed_build_leaves_the_last_module_untouched(tmp_path: Path) -> None:
    needs_clang()
    plugin = new_plugin("kept", "c", tmp_path).path
    assert build_plugin(plugin).ok
    before = (plugin / "main.wasm").read_bytes()
    source = plugin / "main.c"
    source.write_text(source.read_text() + "\nint broken(void) { return }\n")
    for profile in ("release", "dev"):
        result = build_plugin(plugin, profile=profile)  # type: ignore[arg-type]
        assert not result.ok and result.artifact is None
        assert "error" in result.output
        assert (plugin / "main.wasm").read_bytes() == before
        assert not (plugin / ".main.wasm.building").exists()


def test_pack_refuses_a_dev_build_until_the_release_build(tmp_path: Path) -> None:
    needs_clang()
    plugin = new_plugin("shipped", "c", tmp_path).path
    assert build_plugin(plugin, profile="dev").ok
    refused = rwq("plugin", "pack", str(plugin), "--out", str(tmp_path))
    assert refused.returncode == 1
    assert "development build" in refused.stderr and "Traceback" not in refused.stderr
    assert f"rwq plugin build {plugin}" in refused.stderr
    assert not list(tmp_path.glob("*.zip"))
    assert rwq("plugin", "build", str(plugin)).returncode == 0
    packed = rwq("plugin", "pack", str(plugin), "--out", str(tmp_path))
    assert packed.returncode == 0, packed.stderr
    assert len(list(tmp_path.glob("shipped-*.zip"))) == 1


def test_the_warm_compiler_builds_again_and_restarts_after_dying(tmp_path: Path) -> None:
    needs_asc()
    plugin = new_plugin("warm", "assemblyscript", tmp_path).path
    (plugin / "node_modules").symlink_to(NODE_MODULES)
    warm = WarmCompiler()
    try:
        first = build_plugin(plugin, profile="dev", warm=warm)
        assert first.ok, first.output
        assert is_dev_build((plugin / "main.wasm").read_bytes())
        process = warm._process
        assert process is not None and process.poll() is None
        process.kill()  # the next build starts another
        process.wait()
        source = plugin / "main.ts"
        source.write_text(source.read_text() + "\nlet broken: i32 = ;\n")
        failed = build_plugin(plugin, profile="dev", warm=warm)
        assert not failed.ok and "ERROR" in failed.output  # asc's own words
        assert warm._process is not None and warm._process is not process
        source.write_text(source.read_text().replace("\nlet broken: i32 = ;\n", "\n"))
        again = build_plugin(plugin, profile="dev", warm=warm)
        assert again.ok, again.output
        wasmtime.Module(wasmtime.Engine(), (plugin / "main.wasm").read_bytes())
    finally:
        warm.close()
    assert warm._process is None


def test_a_compiler_that_cannot_load_is_reported(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed: make toolchains")
    warm = WarmCompiler()
    with pytest.raises(CompilerGone, match="exited"):
        warm.compile(node, tmp_path / "missing.js", tmp_path, [], timeout=30)
    assert warm._process is None
    warm.close()


def test_checking_an_unbuilt_plugin_says_to_build_it(tmp_path: Path) -> None:
    plugin = new_plugin("unbuilt", "c", tmp_path).path
    done = rwq("plugin", "check", str(plugin))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"build it first with rwq plugin build {plugin}" in done.stdout + done.stderr
