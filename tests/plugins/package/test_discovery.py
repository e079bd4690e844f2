"""Discovery of installed bundles and their load order."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import yaml

from rwq.plugins.package.bundle import Bundle, BundleError, open_bundle
from rwq.plugins.package.discovery import DependencyError, DuplicatePlugin, discover, load_order
from rwq.plugins.package.manifest import ManifestError, parse_manifest

DESIGN_EXAMPLE = Path(__file__).parents[1] / "fixtures" / "design-example"


def manifest(name: str, version: str = "1.0.0", deps: list[Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "api_version": "v1",
        "runtime": "starlark",
        "entry_point": "main.star",
        "dependencies": [
            d if isinstance(d, dict) else {"name": d.split()[0], "version": d.partition(" ")[2]}
            for d in deps or []
        ],
    }


def write_dir(root: Path, data: dict[str, Any]) -> Path:
    root.mkdir(parents=True)
    (root / "manifest.yaml").write_text(yaml.safe_dump(data))
    (root / "main.star").write_text("pass\n")
    return root


def write_zip(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.yaml", yaml.safe_dump(data))
        archive.writestr("main.star", "pass\n")
    return path


def bundle(name: str, version: str = "1.0.0", *deps: Any) -> Bundle:
    """A bundle made in memory; load order looks at manifests only."""
    root = Path("/plugins") / name
    return Bundle(
        path=root,
        manifest=parse_manifest(manifest(name, version, list(deps))),
        sha256="0" * 64,
        kind="dir",
        root=root,
        entry_point=root / "main.star",
        size=0,
        files=("main.star", "manifest.yaml"),
    )


def names(bundles: tuple[Bundle, ...]) -> list[str]:
    return [b.name for b in bundles]


# -- discovery --------------------------------------------------------------------------------


def test_discovery_finds_directories_and_zips(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_dir(plugins / "beta", manifest("beta"))
    write_zip(plugins / "alpha.zip", manifest("alpha"))
    (plugins / "not-a-plugin").mkdir()  # no manifest: not a bundle, ignored
    (plugins / "README.md").write_text("hello")
    write_dir(plugins / ".hidden", manifest("hidden"))
    found = discover([plugins, tmp_path / "absent"], tmp_path / "extracted")
    assert names(found.bundles) == ["alpha", "beta"]
    assert found.errors == {}
    assert {b.kind for b in found.bundles} == {"dir", "zip"}


def test_one_broken_bundle_does_not_hide_the_others(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_dir(plugins / "good", manifest("good"))
    write_dir(plugins / "bad-manifest", {**manifest("bad-manifest"), "runtime": "java"})
    write_dir(plugins / "no-entry", manifest("no-entry"))
    (plugins / "no-entry" / "main.star").unlink()
    (plugins / "junk.zip").write_bytes(b"not a zip at all")
    write_zip(plugins / "also-good.zip", manifest("also-good"))
    with zipfile.ZipFile(plugins / "slip.zip", "w") as archive:
        archive.writestr("manifest.yaml", yaml.safe_dump(manifest("slip")))
        archive.writestr("main.star", "pass\n")
        archive.writestr("../escape.txt", "x")

    found = discover([plugins], tmp_path / "extracted")
    assert names(found.bundles) == ["also-good", "good"]
    assert set(found.errors) == {
        plugins / "bad-manifest",
        plugins / "no-entry",
        plugins / "junk.zip",
        plugins / "slip.zip",
    }
    assert isinstance(found.errors[plugins / "bad-manifest"], ManifestError)
    assert "runtime" in str(found.errors[plugins / "bad-manifest"])
    assert isinstance(found.errors[plugins / "junk.zip"], BundleError)
    assert "entry point" in str(found.errors[plugins / "no-entry"])
    assert not (tmp_path / "escape.txt").exists()


def test_duplicate_names_are_refused_naming_both_paths(tmp_path: Path) -> None:
    system, user = tmp_path / "system", tmp_path / "user"
    write_dir(system / "dup", manifest("dup", "1.0.0"))
    write_zip(user / "dup-2.zip", manifest("dup", "2.0.0"))
    write_dir(user / "other", manifest("other"))
    found = discover([system, user], tmp_path / "extracted")
    assert names(found.bundles) == ["other"]
    for path in (system / "dup", user / "dup-2.zip"):
        err = found.errors[path]
        assert isinstance(err, DuplicatePlugin)
        assert str(system / "dup") in str(err) and str(user / "dup-2.zip") in str(err)


def test_extract_dir_inside_the_plugins_dir_is_not_rediscovered(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_zip(plugins / "alpha.zip", manifest("alpha"))
    for _ in range(2):
        found = discover([plugins], plugins / "extracted")
        assert names(found.bundles) == ["alpha"] and found.errors == {}


def test_same_directory_listed_twice(tmp_path: Path) -> None:
    write_dir(tmp_path / "plugins" / "alpha", manifest("alpha"))
    found = discover([tmp_path / "plugins", tmp_path / "plugins"], tmp_path / "x")
    assert names(found.bundles) == ["alpha"] and found.errors == {}


def test_design_example_loads_after_its_dependency(tmp_path: Path) -> None:
    write_dir(tmp_path / "plugins" / "alert-manager", manifest("alert-manager", "1.4.0"))
    found = discover([tmp_path / "plugins", DESIGN_EXAMPLE.parent], tmp_path / "x")
    assert found.errors == {}
    plan = load_order(found.bundles)
    assert names(plan.order) == ["alert-manager", "tenant-sla-monitor"]
    assert plan.refused == {}


# -- load order -------------------------------------------------------------------------------


def test_dependencies_load_first() -> None:
    plan = load_order(
        [
            bundle("app", "1.0.0", "b ^1.0", "a >=1.0.0"),
            bundle("b", "1.2.0", "a *"),
            bundle("a", "1.0.0"),
            bundle("zeta"),
        ]
    )
    assert names(plan.order) == ["a", "b", "app", "zeta"]
    assert plan.refused == {} and plan.notes == {}


def test_independent_plugins_load_alphabetically() -> None:
    plan = load_order([bundle("c"), bundle("a"), bundle("b")])
    assert names(plan.order) == ["a", "b", "c"]


def test_optional_missing_dependency_is_a_note() -> None:
    plan = load_order(
        [bundle("app", "1.0.0", {"name": "extras", "version": ">=1.0.0", "optional": True})]
    )
    assert names(plan.order) == ["app"]
    assert plan.notes["app"] == (
        "optional dependency extras >=1.0.0 is not installed; loading without it",
    )
    assert plan.refused == {}


def test_optional_dependency_out_of_range_is_left_out() -> None:
    plan = load_order(
        [
            bundle("app", "1.0.0", {"name": "extras", "version": "^2", "optional": True}),
            bundle("extras", "1.5.0"),
        ]
    )
    assert names(plan.order) == ["app", "extras"]
    assert plan.notes["app"] == (
        "optional dependency extras ^2 does not match 1.5.0; loading without it",
    )


def test_optional_dependency_present_orders_too() -> None:
    plan = load_order(
        [bundle("app", "1.0.0", {"name": "zz", "optional": True}), bundle("zz", "1.0.0")]
    )
    assert names(plan.order) == ["zz", "app"]


def test_required_missing_dependency_refuses_the_plugin_and_its_dependants() -> None:
    plan = load_order(
        [
            bundle("app", "1.0.0", "alert-manager >=1.0.0"),
            bundle("dashboard", "1.0.0", "app *"),
            bundle("fine"),
        ]
    )
    assert names(plan.order) == ["fine"]
    assert set(plan.refused) == {"app", "dashboard"}
    err = plan.refused["app"]
    assert isinstance(err, DependencyError) and err.plugin == "app"
    assert str(err) == "plugin 'app': requires alert-manager >=1.0.0, which is not installed"
    assert "requires app, which cannot load" in plan.refused["dashboard"].reason


def test_version_out_of_range_is_refused() -> None:
    plan = load_order([bundle("app", "1.0.0", "lib >=1.0.0 <2"), bundle("lib", "2.1.0")])
    assert names(plan.order) == ["lib"]
    assert plan.refused["app"].reason == "requires lib >=1.0.0 <2, but lib 2.1.0 is installed"


def test_every_missing_dependency_is_named() -> None:
    plan = load_order([bundle("app", "1.0.0", "x *", "y *")])
    reason = plan.refused["app"].reason
    assert reason == "requires x, which is not installed; requires y, which is not installed"


def test_cycle_refuses_every_member_naming_the_cycle() -> None:
    plan = load_order(
        [
            bundle("a", "1.0.0", "b *"),
            bundle("b", "1.0.0", "a *"),
            bundle("c", "1.0.0", "a *"),
            bundle("d"),
        ]
    )
    assert names(plan.order) == ["d"]
    assert plan.refused["a"].reason == "dependency cycle: a -> b -> a"
    assert plan.refused["b"].reason == "dependency cycle: b -> a -> b"
    assert plan.refused["c"].reason == "requires a, which cannot load"


def test_longer_cycle() -> None:
    plan = load_order(
        [bundle("x", "1.0.0", "y *"), bundle("y", "1.0.0", "z *"), bundle("z", "1.0.0", "x *")]
    )
    assert plan.order == ()
    assert plan.refused["y"].reason == "dependency cycle: y -> z -> x -> y"


def test_optional_edge_does_not_make_a_cycle() -> None:
    plan = load_order(
        [bundle("a", "1.0.0", {"name": "b", "optional": True}), bundle("b", "1.0.0", "a *")]
    )
    assert names(plan.order) == ["a", "b"]
    assert plan.refused == {}
    assert "b depends on a" in plan.notes["a"][0]


def test_refused_optional_dependency_is_a_note() -> None:
    plan = load_order(
        [
            bundle("app", "1.0.0", {"name": "extras", "optional": True}),
            bundle("extras", "1.0.0", "missing *"),
        ]
    )
    assert names(plan.order) == ["app"]
    assert "extras cannot load" in plan.notes["app"][0]


def test_duplicate_bundles_in_load_order() -> None:
    plan = load_order([bundle("a"), bundle("a", "2.0.0"), bundle("b", "1.0.0", "a *")])
    assert plan.order == ()
    assert "installed twice" in plan.refused["a"].reason


def test_discovered_zip_loads_by_dependency(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_zip(plugins / "app.zip", manifest("app", "1.0.0", ["lib ~1.2"]))
    write_dir(plugins / "lib", manifest("lib", "1.2.7"))
    found = discover([plugins], tmp_path / "extracted")
    plan = load_order(found.bundles)
    assert names(plan.order) == ["lib", "app"]
    app = plan.order[1]
    assert app.root.parent == tmp_path / "extracted"
    assert open_bundle(app.path, extract_dir=tmp_path / "extracted").root == app.root
