"""``rwq bench toolkit``: the author's loop timed in a real terminal, in a temporary home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rwq.bench.toolkit import ANCHOR, SOURCES, run_toolkit_bench
from rwq.errors import RwqError
from rwq.toolkit.scaffold import new_plugin

pytestmark = pytest.mark.slow


def test_each_template_has_the_line_the_bench_changes(tmp_path: Path) -> None:
    for language, source in SOURCES.items():
        plugin = new_plugin(f"anchor-{language[:4]}", language, tmp_path).path
        assert (plugin / source).read_text(encoding="utf-8").count(ANCHOR) == 1, language


def test_a_starlark_save_is_timed_to_the_screen(tmp_path: Path) -> None:
    home = os.environ.get("HOME")
    figures = run_toolkit_bench(["starlark"], saves=2, rate=5.0)
    starlark = figures["starlark"]
    assert starlark["saves_never_shown"] == []
    save = starlark["save_to_visible_ms"]
    assert save["n"] == 2 and all(ms > 0 for ms in save["each"])
    assert starlark["new_to_live_s"] > starlark["new_s"] > 0
    assert starlark["check_s"] > 0 and starlark["build_s"] is None
    assert set(starlark["met"]) == {"new_to_live", "save_to_visible"}
    assert os.environ.get("HOME") == home  # the user's home was not used


def test_a_c_save_counts_its_build(tmp_path: Path) -> None:
    if shutil.which("clang") is None:
        pytest.fail("clang builds C plugins: run `make toolchains`")
    c = run_toolkit_bench(["c"], saves=1, rate=5.0)["c"]
    assert c["saves_never_shown"] == [] and c["save_to_visible_ms"]["n"] == 1
    assert c["of_which_build_ms"]["n"] == 1
    assert c["of_which_build_ms"]["each"][0] < c["save_to_visible_ms"]["each"][0]
    assert c["build_s"] > 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(RwqError, match="--lang: 'rust'"):
        run_toolkit_bench(["rust"])
    with pytest.raises(RwqError, match="--saves"):
        run_toolkit_bench(["starlark"], saves=0)
