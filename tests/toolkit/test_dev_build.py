"""``rwq plugin dev``'s build loop on a C plugin with a real hot-reloading host: a save
rebuilds it and the new version serves; a build error is reported while the last good version
keeps serving; the fixed build takes over. Also which changes count as sources."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from rwq.config import Settings
from rwq.host.build import HostOptions, build_host
from rwq.plugins.engine.lifecycle import PluginState
from rwq.toolkit.dev import DevBuild, DevBuilder, is_source
from rwq.toolkit.scaffold import new_plugin

DEADLINE = 30.0


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_sources_are_the_code_not_the_output_or_installed_packages(tmp_path: Path) -> None:
    for name in ("main.c", "rwq.h", "src/x.c", "main.ts", "lib/rwq.ts", "build.sh",
                 "package.json"):  # fmt: skip
        assert is_source(tmp_path, tmp_path / name), name
    for name in ("main.wasm", "manifest.yaml", "node_modules/x/index.ts", ".git/x.c",
                 "README.md", ".main.c.swp"):  # fmt: skip
        assert not is_source(tmp_path, tmp_path / name), name
    assert not is_source(tmp_path, tmp_path.parent / "other.c")


def test_a_saved_c_plugin_is_rebuilt_a_broken_build_keeps_the_last_good_version(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    if shutil.which("clang") is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld build C plugins: run `make toolchains`")
    plugin = new_plugin("devc", "c", tmp_path).path
    builds: list[DevBuild] = []
    built = threading.Event()

    def on_build(outcome: DevBuild) -> None:
        builds.append(outcome)
        built.set()

    builder = DevBuilder(plugin, on_build=on_build)
    assert builder.compiled
    assert builder.build("start", strict=True).ok
    options = HostOptions(screen=True, with_installed=False, granted_as_asked=frozenset({"devc"}))
    host = build_host(settings.replace(plugin_dirs=str(plugin)), redis_client, options)
    host.start()
    builder.start()
    manager = host.manager
    source = plugin / "main.c"

    def panel() -> str:
        return str(manager.render("devc", 76, 22).elements)

    try:
        assert manager.plugins() == ["devc"]
        assert manager.state("devc") is PluginState.ACTIVE
        wait_for(lambda: "no failures yet" in panel(), "the first panel")
        loads = manager.status("devc").loads

        source.write_text(source.read_text().replace("no failures yet", "nothing failed (v2)"))
        wait_for(lambda: "nothing failed (v2)" in panel(), "the rebuilt version")
        assert builds[-1].ok and "main.c saved" in builds[-1].trigger

        built.clear()
        source.write_text(source.read_text().replace("nothing failed (v2)", '(v3)" oops'))
        wait_for(lambda: built.is_set() and not builds[-1].ok, "the failed build")
        assert "error" in builds[-1].output
        time.sleep(0.5)  # hot reload had its chance: nothing new to take
        assert manager.state("devc") is PluginState.ACTIVE
        assert "nothing failed (v2)" in panel()

        source.write_text(source.read_text().replace('(v3)" oops', "fixed (v3)"))
        wait_for(lambda: "fixed (v3)" in panel(), "the fixed build to take over")
        assert builds[-1].ok

        # One load per good build: a save of main.c alone changes nothing the host reads
        # (the old module with the new sources was swapped in first, then the new module).
        time.sleep(0.5)  # any other reload would have happened by now
        assert manager.status("devc").loads == loads + 2
    finally:
        builder.stop()
        host.stop()
