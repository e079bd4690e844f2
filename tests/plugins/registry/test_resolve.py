"""Resolving ``NAME@RANGE`` with dependencies against a registry's index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rwq.plugins.package.version import VersionError, parse_range, parse_version
from rwq.plugins.registry.catalog import Catalog
from rwq.plugins.registry.errors import ResolutionError
from rwq.plugins.registry.resolve import Installed, parse_request, resolve
from rwq.queue.keys import InvalidPluginName

PLUGINS: dict[str, dict[str, dict[str, str]]] = {
    # name -> version -> its dependencies
    "sla": {"1.0.0": {"alerts": "^1"}, "1.2.0": {"alerts": "^1.1"}, "1.3.0": {"alerts": "^1.1"},
            "2.0.0-rc.1": {"alerts": "^2"}},
    "alerts": {"1.0.0": {}, "1.1.0": {"store": ">=0.5"}, "1.4.0": {"store": ">=0.5"},
               "2.0.0": {}},
    "store": {"0.5.0": {}, "0.9.0": {}},
    "loop-a": {"1.0.0": {"loop-b": "*"}},
    "loop-b": {"1.0.0": {"loop-a": "*"}},
    "needs-old": {"1.0.0": {"alerts": "<1.2"}},
    "future": {"1.0.0": {}},
}  # fmt: skip


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    plugins = {
        name: {
            "versions": {
                version: {
                    "bundle": f"bundles/{name}/{name}-{version}.zip",
                    "sha256": "0" * 64,
                    "size": 1,
                    "api_version": "v9" if name == "future" else "v1",
                    "dependencies": deps,
                    "published": "2026-01-01T00:00:00Z",
                }
                for version, deps in versions.items()
            }
        }
        for name, versions in PLUGINS.items()
    }
    (tmp_path / "index.json").write_text(json.dumps({"format": 1, "plugins": plugins}))
    with Catalog.load([str(tmp_path)]) as loaded:
        yield loaded


def _chosen(plan: object) -> list[str]:
    return [str(c) for c in plan.install]  # type: ignore[attr-defined]


def test_the_newest_release_in_range_and_its_dependencies_first(catalog: Catalog) -> None:
    plan = resolve([parse_request("sla@^1.2")], catalog, {})
    assert _chosen(plan) == ["store 0.9.0", "alerts 1.4.0", "sla 1.3.0"]
    assert _chosen(resolve([parse_request("sla@~1.2.0")], catalog, {}))[-1] == "sla 1.2.0"
    assert _chosen(resolve([parse_request("sla@1.0.0")], catalog, {})) == [
        "store 0.9.0",
        "alerts 1.4.0",
        "sla 1.0.0",
    ]


def test_a_prerelease_only_when_asked_for(catalog: Catalog) -> None:
    assert _chosen(resolve([parse_request("sla")], catalog, {}))[-1] == "sla 1.3.0"
    assert _chosen(resolve([parse_request("sla")], catalog, {}, prerelease=True)) == [
        "alerts 2.0.0",
        "sla 2.0.0-rc.1",
    ]
    assert _chosen(resolve([parse_request("sla@>=2.0.0-rc.1")], catalog, {}))[-1] == (
        "sla 2.0.0-rc.1"
    )


def test_an_installed_dependency_that_satisfies_is_kept(catalog: Catalog) -> None:
    installed = {"alerts": Installed(parse_version("1.1.0"), {"store": parse_range(">=0.5")}),
                 "store": Installed(parse_version("0.5.0"))}  # fmt: skip
    plan = resolve([parse_request("sla@^1.2")], catalog, installed)
    assert _chosen(plan) == ["sla 1.3.0"]
    assert {k: str(v) for k, v in plan.kept.items()} == {"alerts": "1.1.0"}
    # Too old for what is asked: replaced by the newest that fits.
    too_old = {"alerts": Installed(parse_version("1.0.0"))}
    assert _chosen(resolve([parse_request("sla@^1.2")], catalog, too_old))[-2:] == [
        "alerts 1.4.0",
        "sla 1.3.0",
    ]


def test_installed_plugins_ranges_on_their_dependencies_hold(catalog: Catalog) -> None:
    installed = {"needs-old": Installed(parse_version("1.0.0"), {"alerts": parse_range("<1.2")})}
    assert _chosen(resolve([parse_request("alerts")], catalog, installed)) == [
        "store 0.9.0",
        "alerts 1.1.0",
    ]


def test_a_conflict_names_the_plugins_and_their_ranges(catalog: Catalog) -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve([parse_request("sla@^1.2"), parse_request("alerts@1.0.0")], catalog, {})
    message = str(caught.value)
    assert message.startswith("no version of alerts in ")
    assert "^1.1 (by sla 1.3.0)" in message and "1.0.0 (by the command line)" in message
    assert message.endswith("(available: 1.0.0, 1.1.0, 1.4.0, 2.0.0)")


def test_a_conflict_found_late_is_resolved_by_starting_over(catalog: Catalog) -> None:
    # alerts is chosen for sla first (1.4.0), then needs-old wants <1.2: 1.1.0 fits both.
    plan = resolve([parse_request("sla@1.2.0"), parse_request("needs-old")], catalog, {})
    assert "alerts 1.1.0" in _chosen(plan)


def test_cycles_missing_plugins_and_unrunnable_versions_are_named(catalog: Catalog) -> None:
    with pytest.raises(ResolutionError, match="dependency cycle: loop-a -> loop-b -> loop-a"):
        resolve([parse_request("loop-a")], catalog, {})
    with pytest.raises(ResolutionError, match="no registry lists nothing-here"):
        resolve([parse_request("nothing-here")], catalog, {})
    with pytest.raises(ResolutionError, match="none this rwq can run"):
        resolve([parse_request("future")], catalog, {})
    with pytest.raises(ResolutionError, match=r"satisfies \^9 \(by the command line\)"):
        resolve([parse_request("sla@^9")], catalog, {})


@pytest.mark.parametrize(
    ("text", "error"),
    [("Bad_Name", InvalidPluginName), ("sla@", VersionError), ("sla@^^1", VersionError)],
)
def test_a_bad_request_is_refused(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_request(text)
