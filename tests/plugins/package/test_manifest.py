"""The plugin manifest: the design document's example, every field's checks, error reporting."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hostile_text import assert_shown_safely, hostile_text
from rwq.errors import RwqError
from rwq.plugins.package.manifest import (
    SUPPORTED_API_VERSIONS,
    ManifestError,
    PluginManifest,
    load_manifest,
    parse_manifest,
    parse_manifest_yaml,
)
from rwq.plugins.package.version import parse_version

DESIGN_DOC = Path("/work/shared/design/plugin-panel-system.md")
FIXTURE = Path(__file__).parents[1] / "fixtures" / "design-example" / "manifest.yaml"

# The example manifest of docs/design (plugin-panel-system.md, "Plugin Manifest Structure"),
# copied verbatim.
DESIGN_EXAMPLE = """\
# manifest.yaml
name: "tenant-sla-monitor"
version: "1.2.3"
api_version: "v1"
description: "Real-time SLA monitoring and alerting for tenant queues"

# Plugin metadata
author: "Platform Team"
license: "MIT"
homepage: "https://github.com/company/tenant-sla-plugin"
tags: ["monitoring", "sla", "alerts"]

# Runtime configuration
runtime: "wasm"  # or "starlark"
entry_point: "main.wasm"  # or "main.star"

# Requested capabilities (user must approve)
permissions:
  - "events.subscribe"      # Read queue events
  - "admin.queue.peek"      # Peek at job contents
  - "admin.alerts.send"     # Send alerts (requires approval)

# Resource limits
resources:
  max_memory: "10MB"
  max_cpu: "5%"
  timeout: "30s"

# UI configuration
ui:
  panel_title: "SLA Monitor"
  min_width: 40
  min_height: 10
  resizable: true

# Event subscriptions
events:
  - type: "job.completed"
    queues: ["tenant.*"]
  - type: "queue.stats"
    interval: "5s"

# Dependencies (other plugins)
dependencies:
  - name: "alert-manager"
    version: ">=1.0.0"
    optional: false
"""


def minimal(**changes: Any) -> dict[str, Any]:
    """A valid manifest as parsed YAML, with ``changes`` applied (``None`` deletes)."""
    data: dict[str, Any] = {
        "name": "demo",
        "version": "0.1.0",
        "api_version": "v1",
        "runtime": "starlark",
        "entry_point": "main.star",
        "permissions": ["events.subscribe"],
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def problems_of(data: object) -> dict[str, str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, "plugins/demo/manifest.yaml")
    return dict(info.value.problems)


# -- the design document's example ------------------------------------------------------------


def test_design_example_fixture_is_the_inline_copy() -> None:
    assert FIXTURE.read_text() == DESIGN_EXAMPLE


def test_design_example_is_copied_verbatim() -> None:
    # The design document sits beside the repository (../shared) in every checkout this
    # project makes, CI included; a lone clone without it has nothing to compare against.
    if not DESIGN_DOC.exists():
        pytest.skip(f"design document not found at {DESIGN_DOC}")
    doc = DESIGN_DOC.read_text()
    assert "```yaml\n" + DESIGN_EXAMPLE + "```" in doc


def test_design_example_validates() -> None:
    m = parse_manifest_yaml(DESIGN_EXAMPLE, "design")
    assert m.name == "tenant-sla-monitor"
    assert m.version == parse_version("1.2.3")
    assert m.api_version == "v1"
    assert m.tags == ("monitoring", "sla", "alerts")
    assert m.runtime == "wasm" and m.entry_point == "main.wasm"
    assert m.requested_permissions() == (
        "events.subscribe",
        "admin.queue.peek",
        "admin.alerts.send",
    )
    assert m.permissions[1].queues == ("*",)
    assert m.resources.max_memory == 10_000_000
    assert m.resources.max_cpu == 5.0
    assert m.resources.timeout == 30.0
    assert m.resources.max_storage == 1_000_000 and m.resources.max_storage_keys == 1000
    assert (m.ui.panel_title, m.ui.min_width, m.ui.min_height, m.ui.resizable) == (
        "SLA Monitor",
        40,
        10,
        True,
    )
    assert m.events[0].type == "job.completed" and m.events[0].queues == ("tenant.*",)
    assert m.events[1].type == "queue.stats" and m.events[1].interval == 5.0
    assert m.events[1].queues == ("*",)
    dep = m.dependencies[0]
    assert dep.name == "alert-manager" and not dep.optional
    assert dep.version.contains(parse_version("1.0.0"))
    assert not dep.version.contains(parse_version("0.9.0"))
    assert m.config == {}


def test_load_manifest_from_file_and_directory() -> None:
    assert load_manifest(FIXTURE) == load_manifest(FIXTURE.parent)


def test_dump_round_trips() -> None:
    m = parse_manifest_yaml(DESIGN_EXAMPLE)
    assert PluginManifest.model_validate(m.model_dump()) == m
    assert PluginManifest.model_validate_json(m.model_dump_json()) == m
    assert "properties" in PluginManifest.model_json_schema()


def test_defaults() -> None:
    m = parse_manifest(minimal())
    assert m.resources.max_memory == 16_000_000
    assert m.resources.max_cpu == 10.0
    assert m.resources.timeout == 5.0
    assert m.resources.max_storage == 1_000_000
    assert m.resources.max_storage_keys == 1000
    assert m.ui.min_width >= 1 and m.ui.resizable
    assert m.events == () and m.dependencies == () and m.config == {}


def test_manifest_is_frozen_and_hashable() -> None:
    m = parse_manifest(minimal(config={"nested": {"a": [1]}}))
    with pytest.raises(ValueError):
        m.name = "other"
    assert hash(m) == hash(parse_manifest(minimal(config={"nested": {"a": [1]}})))
    assert len({m, parse_manifest(minimal(config={"nested": {"a": [1]}}))}) == 1


def test_yml_extension(tmp_path: Path) -> None:
    (tmp_path / "manifest.yml").write_text(yaml.safe_dump(minimal()))
    assert load_manifest(tmp_path).name == "demo"


# -- one wrong field at a time -----------------------------------------------------------------

WRONG_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"name": "Tenant_SLA"}, "name"),
    ({"name": "-lead"}, "name"),
    ({"name": None}, "name"),
    ({"version": "1.2"}, "version"),
    ({"version": 1.2}, "version"),
    ({"api_version": None}, "api_version"),
    ({"description": 5}, "description"),
    ({"author": ["a"]}, "author"),
    ({"license": 3}, "license"),
    ({"homepage": "not a url"}, "homepage"),
    ({"tags": "monitoring"}, "tags"),
    ({"tags": ["Has Space"]}, "tags"),
    ({"runtime": "python"}, "runtime"),
    ({"entry_point": "../main.star"}, "entry_point"),
    ({"entry_point": "/abs/main.star"}, "entry_point"),
    ({"entry_point": "dir\\main.star"}, "entry_point"),
    ({"entry_point": "main.wasm"}, "entry_point"),
    ({"entry_point": None}, "entry_point"),
    ({"permissions": ["events.subscribe", "admin.nope"]}, "permissions[1]"),
    ({"permissions": "events.subscribe"}, "permissions"),
    ({"permissions": ["events.subscribe", "events.subscribe"]}, "permissions"),
    ({"permissions": [{"name": "admin.nope"}]}, "permissions[0].name"),
    ({"permissions": [{"scope": {}}]}, "permissions[0].name"),
    ({"permissions": [{"name": "storage.read", "scope": {"queues": ["a"]}}]},
     "permissions[0].scope"),
    ({"permissions": [{"name": "events.subscribe", "scope": {"tenants": []}}]},
     "permissions[0].scope.tenants"),
    ({"permissions": [{"name": "events.subscribe", "scope": {"operations": ["a b"]}}]},
     "permissions[0].scope.operations"),
    ({"resources": {"max_memory": "lots"}}, "resources.max_memory"),
    ({"resources": {"max_memory": "1KB"}}, "resources.max_memory"),
    ({"resources": {"max_cpu": "150%"}}, "resources.max_cpu"),
    ({"resources": {"max_cpu": "0%"}}, "resources.max_cpu"),
    ({"resources": {"timeout": "soon"}}, "resources.timeout"),
    ({"resources": {"timeout": 0}}, "resources.timeout"),
    ({"resources": {"max_storage": "-1MB"}}, "resources.max_storage"),
    ({"resources": {"max_storage_keys": -1}}, "resources.max_storage_keys"),
    ({"resources": {"max_disk": "1MB"}}, "resources.max_disk"),
    ({"ui": {"panel_title": 7}}, "ui.panel_title"),
    ({"ui": {"min_width": 0}}, "ui.min_width"),
    ({"ui": {"min_height": "10"}}, "ui.min_height"),
    ({"ui": {"resizable": "sometimes"}}, "ui.resizable"),
    ({"events": [{"type": "jobs.done"}]}, "events[0].type"),
    ({"events": [{"type": "job.completed", "queues": []}]}, "events[0].queues"),
    ({"events": [{"type": "job.completed", "interval": "5s"}]}, "events[0].interval"),
    ({"events": [{"type": "queue.stats", "interval": "1ms"}]}, "events[0].interval"),
    ({"events": [{"type": "job.*"}], "permissions": []}, "events"),
    ({"dependencies": [{"name": "x", "version": ">=banana"}]}, "dependencies[0].version"),
    ({"dependencies": [{"name": "X!"}]}, "dependencies[0].name"),
    ({"dependencies": [{"name": "x", "optional": "maybe"}]}, "dependencies[0].optional"),
    ({"dependencies": [{"name": "x"}, {"name": "x"}]}, "dependencies"),
    ({"dependencies": [{"name": "demo"}]}, "dependencies"),
    ({"config": {"when": __import__("datetime").date(2024, 1, 1)}}, "config"),
    ({"config": {1: "x"}}, "config"),
    ({"config": ["not", "a", "mapping"]}, "config"),
    ({"surprise": True}, "surprise"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "path"), WRONG_FIELDS, ids=[p for _, p in WRONG_FIELDS])
def test_each_wrong_field_is_named(changes: dict[str, Any], path: str) -> None:
    problems = problems_of(minimal(**copy.deepcopy(changes)))
    assert list(problems) == [path], problems


def test_missing_fields_are_reported_as_required() -> None:
    problems = problems_of({})
    for name in ("name", "version", "api_version", "runtime", "entry_point"):
        assert problems[name] == "required"


def test_every_problem_is_reported_at_once() -> None:
    data = minimal(
        name="Bad Name",
        version="one",
        runtime="wasm",  # with entry_point main.star: mismatch
        permissions=["events.subscribe", "admin.queue.peeek", {"name": "x.y"}],
        resources={"max_memory": "ten", "max_cpu": "500%"},
        ui={"min_width": -1},
    )
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, "plugins/demo/manifest.yaml")
    err = info.value
    assert [field for field, _ in err.problems] == [
        "name",
        "version",
        "entry_point",
        "permissions[1]",
        "permissions[2].name",
        "resources.max_memory",
        "resources.max_cpu",
        "ui.min_width",
    ]
    lines = str(err).splitlines()
    assert len(lines) == len(err.problems)
    for (field, reason), line in zip(err.problems, lines, strict=True):
        assert line == f"plugins/demo/manifest.yaml: {field}: {reason}"
    assert "did you mean 'admin.queue.peek'" in dict(err.problems)["permissions[1]"]
    assert "needs a .wasm entry point" in dict(err.problems)["entry_point"]
    assert isinstance(err, RwqError)


def test_unknown_api_version_lists_supported() -> None:
    reason = problems_of(minimal(api_version="v2"))["api_version"]
    assert "'v2'" in reason
    for version in SUPPORTED_API_VERSIONS:
        assert version in reason


def test_unknown_permission() -> None:
    reason = problems_of(minimal(permissions=["events.subscribe", "admin.everything"]))[
        "permissions[1]"
    ]
    assert "unknown permission 'admin.everything'" in reason
    assert "admin.queue.peek" in reason  # the catalog is listed


def test_a_level_is_not_a_permission() -> None:
    reason = problems_of(minimal(permissions=["operator"]))["permissions[0]"]
    assert "level" in reason


def test_permission_objects_with_scope() -> None:
    m = parse_manifest(
        minimal(
            permissions=[
                "events.subscribe",
                {"name": "admin.queue.peek", "scope": {"queues": ["tenant.*", "billing"]}},
                {"name": "admin.job.requeue", "scope": {"queues": "tenant.*",
                                                        "operations": ["requeue_job"]}},
                {"name": "ui.notifications"},
            ]
        )
    )  # fmt: skip
    assert m.requested_permissions() == (
        "events.subscribe",
        "admin.queue.peek",
        "admin.job.requeue",
        "ui.notifications",
    )
    assert m.permissions[0].queues == ("*",) and m.permissions[0].operations == ("*",)
    assert m.permissions[1].queues == ("tenant.*", "billing")
    assert m.permissions[2].queues == ("tenant.*",)
    assert m.permissions[2].operations == ("requeue_job",)
    assert m.permissions[3].scope.queues == ("*",)


def test_event_patterns() -> None:
    m = parse_manifest(
        minimal(
            events=[
                {"type": "job.*", "queues": ["tenant.*"]},
                {"type": "plugin.alert-manager.*"},
                {"type": "queue.stats", "interval": "500ms"},
            ]
        )
    )
    assert [e.type for e in m.events] == ["job.*", "plugin.alert-manager.*", "queue.stats"]
    assert m.events[2].interval == 0.5


def test_config_defaults_are_kept() -> None:
    config = {"threshold_ms": 250, "tenants": ["a", "b"], "nested": {"on": True, "x": None}}
    assert parse_manifest(minimal(config=config)).config == config


def test_error_names_the_inner_config_key() -> None:
    reason = problems_of(minimal(config={"alerts": {"since": __import__("datetime").date.today()}}))
    assert "alerts.since" in reason["config"]


def test_unknown_field_suggests_the_close_one() -> None:
    reason = problems_of(minimal(resources={"max_memroy": "1MB"}))["resources.max_memroy"]
    assert "unknown field" in reason and "did you mean 'max_memory'" in reason


# -- YAML --------------------------------------------------------------------------------------


def yaml_problems(text: str | bytes) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as info:
        parse_manifest_yaml(text, "m.yaml")
    return info.value.problems


def test_invalid_yaml_gives_the_position() -> None:
    [(field, reason)] = yaml_problems("name: demo\nversion: [1.2.3\n")
    assert field == "" and re.search(r"line \d+, column \d+", reason)


def test_top_level_must_be_a_mapping() -> None:
    [(field, reason)] = yaml_problems("- just\n- a list\n")
    assert field == "" and "mapping" in reason


def test_duplicate_keys_are_refused() -> None:
    text = yaml.safe_dump(minimal()) + "permissions: [admin.queue.purge]\n"
    [(_, reason)] = yaml_problems(text)
    assert "duplicate key 'permissions'" in reason


def test_aliases_are_refused() -> None:
    text = "a: &x [1, 2]\nb: [*x, *x]\n"
    [(_, reason)] = yaml_problems(text)
    assert "aliases" in reason


def test_unsafe_tags_are_refused() -> None:
    [(_, reason)] = yaml_problems("name: !!python/object/apply:os.system ['true']\n")
    assert "invalid YAML" in reason


def test_missing_and_oversize_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no manifest\.yaml or manifest\.yml"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "absent.yaml")
    big = tmp_path / "manifest.yaml"
    big.write_text(yaml.safe_dump(minimal()) + "#" * 300_000 + "\n")
    with pytest.raises(ManifestError, match="larger than"):
        load_manifest(big)


def test_not_utf8() -> None:
    [(_, reason)] = yaml_problems(b"name: \xff\xfe\n")
    assert "UTF-8" in reason


# -- hostile values ---------------------------------------------------------------------------

BASE = "name: x\nversion: '1.0.0'\napi_version: v1\nruntime: starlark\nentry_point: main.star\n"


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ('resources: {max_memory: "' + "1" * 400 + '"}', "resources.max_memory", "a size"),
        ("resources: {timeout: 1" + "0" * 400 + "}", "resources.timeout", "a duration"),
        ("resources: {max_cpu: .nan}", "resources.max_cpu", "at most 100%"),
        ("description: !!bool maybe", "", "line 6, column 14: invalid YAML: !!bool cannot read"),
        ("description: !!int abc", "", "!!int cannot read 'abc'"),
        ("description: !!timestamp foo", "", "!!timestamp cannot read 'foo'"),
        ('config: {"\\udc80": 1}', "", "lone surrogate"),
        ('ui: {panel_title: "\\e[2J\\e]0;pwn\\a"}', "ui.panel_title", "control character \\x1b"),
        ('description: "a\\x9bb"', "description", "control character \\x9b"),
        ('author: "\\u202eevil"', "author", "control character \\u202e"),
        ('homepage: "https://x.io/\\e[2J"', "homepage", "control character \\x1b"),
        ('license: "MIT\\nGPL"', "license", "control character \\n"),
    ],
)
def test_hostile_values_are_manifest_errors_naming_the_field(
    extra: str, field: str, reason: str
) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest_yaml(BASE + extra + "\n", "m.yaml")
    problems = dict(info.value.problems)
    assert field in problems, problems
    assert reason in problems[field]


def test_an_entry_point_with_a_bidi_control_is_refused() -> None:
    assert (
        "control character \\u2066"
        in problems_of(minimal(entry_point="main\u2066.star"))["entry_point"]
    )


def test_markup_in_a_title_and_lines_in_a_description_are_plain_text() -> None:
    manifest = parse_manifest_yaml(
        BASE + 'ui: {panel_title: "[/] [@click=app.quit]x :heart:"}\ndescription: "a\\nb"\n'
    )
    assert manifest.ui.panel_title == "[/] [@click=app.quit]x :heart:"
    assert manifest.description == "a\nb"


_leaf = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=5,
)
_paths = st.sampled_from([
    ("name",), ("version",), ("api_version",), ("description",), ("author",), ("license",),
    ("homepage",), ("tags",), ("runtime",), ("entry_point",), ("permissions",),
    ("permissions", 0), ("resources",), ("resources", "max_memory"), ("resources", "max_cpu"),
    ("resources", "timeout"), ("resources", "max_storage"), ("resources", "max_storage_keys"),
    ("ui",), ("ui", "panel_title"), ("ui", "min_width"), ("ui", "resizable"), ("events",),
    ("events", 0, "type"), ("events", 0, "queues"), ("events", 0, "interval"),
    ("dependencies",), ("dependencies", 0, "version"), ("config",), ("config", "k"),
])  # fmt: skip


def _full() -> dict[str, Any]:
    return minimal(
        description="d", resources={"max_memory": "16MB"}, ui={"panel_title": "t"},
        events=[{"type": "queue.stats", "interval": "5s"}],
        dependencies=[{"name": "other", "version": ">=1"}], config={"k": 1},
    )  # fmt: skip


def _judged(text: str | bytes) -> None:
    try:
        manifest = parse_manifest_yaml(text, "m.yaml")
    except ManifestError as error:
        assert error.path == "m.yaml" and error.problems
        return
    for shown in (manifest.name, manifest.author, manifest.license, manifest.homepage,
                  manifest.ui.panel_title, manifest.entry_point, *manifest.tags):  # fmt: skip
        assert_shown_safely(shown)
    assert_shown_safely(manifest.description.replace("\t", " "))


@pytest.mark.fuzz
@given(_paths, _values)
def test_any_value_at_any_field_is_taken_or_named(path: tuple[Any, ...], value: Any) -> None:
    data = _full()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # PyYAML cannot write it (a lone surrogate key): nothing to read
    _judged(text)
    _judged(text.encode("utf-8", "surrogatepass"))


@pytest.mark.fuzz
@given(st.binary(max_size=300))
def test_any_bytes_are_a_manifest_or_a_manifest_error(data: bytes) -> None:
    _judged(BASE.encode() + data)
