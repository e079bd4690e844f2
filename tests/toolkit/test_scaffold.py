"""``rwq.toolkit.scaffold``: what ``rwq plugin new`` writes, and what it refuses."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.package.manifest import load_manifest
from rwq.toolkit.scaffold import LANGUAGES, SNAPSHOT, ScaffoldError, new_plugin

REPO = Path(__file__).parents[2]
TEMPLATES = REPO / "src" / "rwq" / "toolkit" / "templates"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_new_plugin_has_a_valid_least_privilege_manifest_and_its_fixtures(
    tmp_path: Path, language: str
) -> None:
    made = new_plugin("queue-health", language, tmp_path)
    assert made.path == tmp_path / "queue-health"
    for needed in ("manifest.yaml", "README.md", "fixtures/events.jsonl", "fixtures/seed.jsonl",
                   SNAPSHOT):  # fmt: skip
        assert (made.path / needed).is_file(), needed
    manifest = load_manifest(made.path / "manifest.yaml")
    assert manifest.name == "queue-health"
    assert manifest.ui.panel_title == "Queue health"
    assert {p.name for p in manifest.permissions} == {"events.subscribe", "admin.stats.read"}
    assert [e.type for e in manifest.events] == ["job.completed", "job.failed"]  # what it counts
    text = (made.path / "manifest.yaml").read_text(encoding="utf-8")
    assert "{{" not in text and "#" in text  # filled in, and commented
    readme = (made.path / "README.md").read_text(encoding="utf-8")
    assert "{{" not in readme
    for command in ("rwq plugin check", "--snapshot", "rwq plugin pack", "rwq plugin sign",
                    "rwq plugin publish", "rwq plugin install", "rwq tui"):  # fmt: skip
        assert command in readme, command
    snapshot = (made.path / SNAPSHOT).read_text(encoding="utf-8").splitlines()
    assert snapshot[0].startswith("╭─ Queue health ─") and len(snapshot) == 24


def test_the_languages_bring_what_they_build_with(tmp_path: Path) -> None:
    c = new_plugin("in-c", "c", tmp_path).path
    assert (c / "rwq.h").read_bytes() == (TEMPLATES / "c" / "rwq.h").read_bytes()
    assert not (c / "rwq.h").is_symlink()  # a file of its own, built outside rwq's tree
    assert stat.S_IMODE(os.stat(c / "build.sh").st_mode) == 0o755
    assert load_manifest(c).entry_point == "main.wasm"

    script = new_plugin("in-as", "assemblyscript", tmp_path).path
    sdk = REPO / "sdk" / "assemblyscript"
    for name in ("rwq.ts", "exports.ts"):
        copy = (script / "lib" / name).read_bytes()
        assert copy == (TEMPLATES / "assemblyscript" / "lib" / name).read_bytes()
    package = json.loads((script / "package.json").read_text(encoding="utf-8"))
    pinned = json.loads((sdk / "package.json").read_text(encoding="utf-8"))
    assert package["name"] == "in-as"
    assert package["devDependencies"] == pinned["devDependencies"]
    lock = json.loads((script / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"][""]["devDependencies"] == pinned["devDependencies"]
    assert lock["name"] == lock["packages"][""]["name"] == "in-as"
    assert (script / ".gitignore").read_text(encoding="utf-8") == "node_modules/\n"

    star = new_plugin("in-star", "starlark", tmp_path).path
    assert load_manifest(star).entry_point == "main.star"
    assert not list(star.glob("_*"))  # the README's pieces stay in the templates


@pytest.mark.parametrize(
    ("sdk", "template"),
    [
        ("sdk/c/rwq.h", "c/rwq.h"),
        ("sdk/assemblyscript/assembly/rwq.ts", "assemblyscript/lib/rwq.ts"),
        ("sdk/assemblyscript/assembly/exports.ts", "assemblyscript/lib/exports.ts"),
    ],
)
def test_each_sdk_file_is_one_file_the_sdk_links_to_the_templates(sdk: str, template: str) -> None:
    """The templates ship in the wheel, where sdk/ is not: the file is the template's, and the
    SDK's path is a relative link to it (one copy to change)."""
    real = TEMPLATES / template
    link = REPO / sdk
    assert real.is_file() and not real.is_symlink()
    assert link.is_symlink(), f"{sdk} should be a link to src/rwq/toolkit/templates/{template}"
    target = Path(os.readlink(link))
    assert not target.is_absolute(), target
    assert link.resolve() == real.resolve()


def test_a_new_plugin_opens_as_a_bundle(tmp_path: Path) -> None:
    made = new_plugin("as-bundle", "starlark", tmp_path)
    bundle = open_bundle(made.path)
    assert bundle.name == "as-bundle"


def test_new_refuses_a_directory_that_is_not_empty_naming_it(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ScaffoldError, match="taken: directory is not empty"):
        new_plugin("taken", "starlark", tmp_path)
    assert (tmp_path / "taken" / "notes.txt").read_text(encoding="utf-8") == "mine"
    (tmp_path / "empty").mkdir()
    assert new_plugin("empty", "starlark", tmp_path).path == tmp_path / "empty"


@pytest.mark.parametrize(
    ("name", "language", "needle"),
    [
        ("Bad_Name", "starlark", "NAME: invalid plugin name 'Bad_Name'"),
        ("", "starlark", "NAME: invalid plugin name"),
        ("../up", "c", "NAME: invalid plugin name"),
        ("fine", "rust", "--lang: unknown language 'rust'"),
    ],
)
def test_new_refuses_a_bad_name_or_language(
    tmp_path: Path, name: str, language: str, needle: str
) -> None:
    with pytest.raises(ScaffoldError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        new_plugin(name, language, tmp_path)
    assert list(tmp_path.iterdir()) == []
