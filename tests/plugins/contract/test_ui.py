"""The UI element schema: every type passes, every broken rule is named by path and field, the
doc is generated from the catalog, and the SDK's example plugins render conforming panels."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rwq.config import Settings
from rwq.host.check import check_plugin, read_events
from rwq.plugins.contract.ui import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    TYPES,
    ElementError,
    cap_elements,
    style_error,
    validate_elements,
)
from rwq.plugins.contract.ui_doc import render_markdown

ROOT = Path(__file__).parents[3]
SDK = ROOT / "sdk"

EVERY_TYPE: list[dict[str, Any]] = [
    {"type": "text", "text": "line one\nline two", "style": "bold red on white",
     "level": "warning", "align": "center", "id": "intro"},
    {"type": "table", "id": "queues", "title": "Queues", "columns": ["queue", "depth", "ok"],
     "rows": [["emails", 3, True], ["reports", 1.5, None]], "row_styles": ["dim", None]},
    {"type": "kv", "title": "Totals", "items": [["done", 10], ["failed", None], ["up", True],
                                               ["name", "x"]]},
    {"type": "sparkline", "values": [1, 2.5, 3, 0], "label": "rate", "style": "green",
     "min": 0, "max": 10},
    {"type": "gauge", "value": 75, "max": 100, "label": "mem", "style": "cyan", "warn": 70,
     "crit": 90},
    {"type": "progress", "value": 3, "total": 10, "label": "migrated"},
    {"type": "badge", "text": "LIVE", "level": "ok"},
    {"type": "list", "id": "workers", "items": ["w1", "w2"], "selected": 1, "title": "Workers"},
    {"type": "button", "id": "refresh", "label": "Refresh", "variant": "primary", "key": "r"},
    {"type": "rows", "gap": 1, "children": [
        {"type": "columns", "widths": [1, 2], "gap": 2, "children": [
            {"type": "badge", "text": "a"},
            {"type": "button", "id": "b", "label": "B"},
        ]},
    ]},
]  # fmt: skip


def nested(depth: int) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "text", "text": "deep"}
    for _ in range(depth - 1):
        element = {"type": "rows", "children": [element]}
    return element


def error_of(elements: Any) -> str:
    with pytest.raises(ElementError) as caught:
        validate_elements(elements)
    assert isinstance(caught.value, ValueError)  # what the manager catches
    return str(caught.value)


def test_every_type_is_valid_and_returned_unchanged() -> None:
    elements = copy.deepcopy(EVERY_TYPE)
    assert validate_elements(elements) is elements
    assert elements == EVERY_TYPE
    assert {e["type"] for e in EVERY_TYPE} | {"columns"} == set(TYPES)


def test_minimal_elements_of_every_type_are_valid() -> None:
    minimal = [
        {"type": "text", "text": ""},
        {"type": "table", "columns": ["a"], "rows": []},
        {"type": "kv", "items": []},
        {"type": "sparkline", "values": []},
        {"type": "gauge", "value": -1},
        {"type": "progress", "value": 0},
        {"type": "badge", "text": "x"},
        {"type": "list", "id": "l", "items": []},
        {"type": "button", "id": "b", "label": "B"},
        {"type": "rows", "children": []},
        {"type": "columns", "children": []},
    ]
    assert validate_elements(minimal) is minimal
    assert validate_elements([]) == []


def test_null_optional_fields_count_as_absent() -> None:
    elements = [{"type": "list", "id": "l", "items": ["a"], "selected": None, "title": None}]
    assert validate_elements(elements) == elements
    with pytest.raises(ElementError, match="items"):  # required, so null is refused
        validate_elements([{"type": "list", "id": "l", "items": None}])


@pytest.mark.parametrize(
    ("elements", "expected"),
    [
        ({"type": "text"}, "render must return a list of elements, got an object"),
        (["text"], "[0]: must be an element object, got a string"),
        ([{"text": "x"}], "[0]: has no type"),
        ([{"type": "chart"}], "[0]: unknown type 'chart'"),
        ([{"type": "text", "text": "x", "colour": "red"}], "[0]: unknown field 'colour' for text"),
        ([{"type": "text"}], "[0]: text needs the field 'text'"),
        ([{"type": "text", "text": 5}], "[0].text: must be a string, got a number"),
        ([{"type": "text", "text": "x" * 4097}], "[0].text: must be 0-4096 characters, got 4097"),
        ([{"type": "text", "text": "x", "align": "middle"}], "[0].align: must be one of left"),
        ([{"type": "text", "text": "x", "level": "fatal"}], "[0].level: must be one of ok"),
        ([{"type": "text", "text": "x", "style": "bold blink"}],
         "[0].style: 'blink' is not a style word"),
        ([{"type": "text", "text": "x", "style": "[bold]"}],
         "[0].style: '[bold]' is not a style word"),
        ([{"type": "text", "text": "x", "style": "red on"}], "ends in 'on' without a colour"),
        ([{"type": "text", "text": "x", "style": "on bold"}],
         "'on' must be followed by a colour, got 'bold'"),
        ([{"type": "text", "text": "x", "style": "red blue"}], "more than one foreground"),
        ([{"type": "text", "text": "x", "style": "bold italic dim underline strike reverse red"}],
         "has 7 words, over 6"),
        ([{"type": "text", "text": "x", "id": "has space"}], "[0].id: must be 1-64 characters"),
        ([{"type": "text", "text": "x", "id": "x" * 65}], "[0].id: must be 1-64 characters"),
        ([{"type": "button", "label": "Go"}], "[0]: button needs the field 'id'"),
        ([{"type": "list", "items": ["a"]}], "[0]: list needs the field 'id'"),
        ([{"type": "button", "id": "b", "label": "x" * 33}], "[0].label: must be 1-32"),
        ([{"type": "button", "id": "b", "label": "B", "key": "rr"}],
         "[0].key: must be one printable character, got 'rr'"),
        ([{"type": "button", "id": "b", "label": "B", "key": "\n"}], "[0].key: must be one"),
        ([{"type": "button", "id": "b", "label": "B", "variant": "danger"}],
         "[0].variant: must be one of default, primary, warning, error"),
        ([{"type": "table", "columns": [], "rows": []}],
         "[0].columns: has 0 items, must have 1-32"),
        ([{"type": "table", "columns": ["a"] * 33, "rows": []}], "has 33 items, must have 1-32"),
        ([{"type": "table", "columns": ["a"], "rows": [["x"]] * 1001}],
         "[0].rows: has 1001 items, must have 0-1000"),
        ([{"type": "table", "columns": ["a"], "rows": [[{"x": 1}]]}],
         "[0].rows[0][0]: must be a string, number, bool or null, got an object"),
        ([{"type": "table", "columns": ["a"], "rows": [["x" * 257]]}],
         "[0].rows[0][0]: string of 257 characters, over 256"),
        ([{"type": "table", "columns": ["a", "b"], "rows": [["x", 1], ["y"]]}],
         "[0].rows[1]: has 1 cells, the table has 2 columns"),
        ([{"type": "table", "columns": ["a"], "rows": [["x"]], "row_styles": ["bold", "dim"]}],
         "[0].row_styles: has 2 entries for 1 rows"),
        ([{"type": "table", "columns": ["a"], "rows": [["x"]], "row_styles": ["neon"]}],
         "[0].row_styles[0]: 'neon' is not a style word"),
        ([{"type": "kv", "items": [["a", 1, 2]]}], "[0].items[0]: must be a [key, value] pair"),
        ([{"type": "kv", "items": [[1, 1]]}], "[0].items[0][0]: must be a string, got a number"),
        ([{"type": "kv", "items": [["k", 1]] * 201}], "[0].items: has 201 items"),
        ([{"type": "sparkline", "values": [1, "2"]}],
         "[0].values[1]: must be a number, got a string"),
        ([{"type": "sparkline", "values": [1, True]}],
         "[0].values[1]: must be a number, got a bool"),
        ([{"type": "sparkline", "values": [0] * 1001}], "[0].values: has 1001 items, over 1000"),
        ([{"type": "sparkline", "values": [1], "label": "x" * 65}], "[0].label: must be 0-64"),
        ([{"type": "sparkline", "values": [math.nan]}],
         "[0].values[0]: must be a finite number, got nan"),
        ([{"type": "gauge", "value": math.inf}], "[0].value: must be a finite number, got inf"),
        ([{"type": "gauge", "value": 1, "max": 0}], "[0].max: must be > 0, got 0"),
        ([{"type": "gauge", "value": 10**400}], "[0].value: must be a finite number, got an int"),
        ([{"type": "sparkline", "values": [0, -(10**400)]}],
         "[0].values[1]: must be a finite number, got an int"),
        ([{"type": "gauge", "value": True}], "[0].value: must be a number, got a bool"),
        ([{"type": "gauge", "value": 1, "warn": math.nan}], "[0].warn: must be a finite number"),
        ([{"type": "progress", "value": -1}], "[0].value: must be ≥ 0, got -1"),
        ([{"type": "progress", "value": 1, "total": -5}], "[0].total: must be > 0, got -5"),
        ([{"type": "badge", "text": "x" * 65}], "[0].text: must be 0-64 characters"),
        ([{"type": "list", "id": "l", "items": ["a"] * 501}], "[0].items: has 501 items"),
        ([{"type": "list", "id": "l", "items": ["a"], "selected": 1}],
         "[0].selected: is 1, the list has 1 items"),
        ([{"type": "list", "id": "l", "items": ["a"], "selected": -1}],
         "[0].selected: must be an integer 0-"),
        ([{"type": "list", "id": "l", "items": ["a"], "selected": 0.5}],
         "[0].selected: must be an integer, got a number"),
        ([{"type": "rows", "children": {"type": "text"}}],
         "[0].children: must be a list of elements, got an object"),
        ([{"type": "rows", "children": [], "gap": 5}], "[0].gap: must be an integer 0-4, got 5"),
        ([{"type": "columns", "children": [{"type": "badge", "text": "a"}], "widths": [1, 1]}],
         "[0].widths: has 2 weights for 1 children"),
        ([{"type": "columns", "children": [{"type": "badge", "text": "a"}], "widths": [0]}],
         "[0].widths[0]: must be an integer 1-, got 0"),
        ([{"type": "text", "text": "ok"}, {"type": "rows", "children": [
            {"type": "table", "columns": ["a", "b", "c"],
             "rows": [["x", 1, 2], ["x", 1, 2], ["x", 1, 2], ["x", 1, 2, 3]]}]}],
         "[1].children[0].rows[3]: has 4 cells, the table has 3 columns"),
        ([{"type": "rows", "children": [{"type": "columns", "children": [{"type": "oops"}]}]}],
         "[0].children[0].children[0]: unknown type 'oops'"),
    ],
)  # fmt: skip
def test_invalid_elements_are_named_by_path_and_field(elements: Any, expected: str) -> None:
    assert expected in error_of(elements)


def test_depth_is_capped() -> None:
    validate_elements([nested(MAX_DEPTH)])
    message = error_of([nested(MAX_DEPTH + 1)])
    path = "[0]" + ".children[0]" * MAX_DEPTH
    assert message == f"{path}: nested deeper than {MAX_DEPTH} levels"


def test_the_element_count_covers_the_whole_tree() -> None:
    just = [{"type": "rows", "children": [{"type": "badge", "text": "x"}] * (MAX_ELEMENTS - 1)}]
    validate_elements(just)
    over = [{"type": "rows", "children": [{"type": "badge", "text": "x"}] * MAX_ELEMENTS}]
    message = error_of(over)
    assert message == f"[0].children[{MAX_ELEMENTS - 1}]: more than {MAX_ELEMENTS} elements " \
        "in the render result"  # fmt: skip


def test_style_vocabulary() -> None:
    for ok in ("", "bold", "bold red on white", "grey on orange", "dim italic strike"):
        assert style_error(ok) is None, ok
    for bad in ("Bold", "red on", "on", "bright_red", "#ff0000", "link https://x"):
        assert style_error(bad) is not None, bad


def test_validator_plugs_into_the_manager_caps() -> None:
    """What the manager does with a render result: size caps, then the schema."""
    result = json.loads(json.dumps(EVERY_TYPE))
    assert validate_elements(cap_elements(result)) == EVERY_TYPE


def test_doc_covers_every_type_and_field() -> None:
    doc = render_markdown()
    for spec in TYPES.values():
        assert f"### {spec.name}\n" in doc
        for name in spec.by_name:
            assert f"| `{name}` |" in doc
    for word in ("strike", "orange", "critical", "muted", '"kind": "select"', "≤ 2000"):
        assert word in doc


# -- the SDK's examples render conforming panels -------------------------------------------------


def job_events(tmp_path: Path, n: int) -> Path:
    kinds = ("job.completed", "job.failed")
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps({"type": kinds[i % 2], "queue": "emails", "data": {"job_id": f"j{i}"}})
            + "\n"
            for i in range(n)
        ),
        encoding="utf-8",
    )
    return path


def build(plugin: Path, script: Path) -> None:
    result = subprocess.run([str(script), str(plugin)], capture_output=True, text=True,
                            timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("example", ["starlark/hello", "c/hello", "assemblyscript/hello"])
def test_sdk_examples_render_conforming_elements(
    example: str, settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    language = example.split("/")[0]
    plugin = tmp_path / "plugin"
    shutil.copytree(SDK / example, plugin, ignore=shutil.ignore_patterns("main.wasm"))
    if language == "c":
        if shutil.which("clang") is None or shutil.which("wasm-ld") is None:
            pytest.fail("clang and wasm-ld are needed to build C plugins: run `make toolchains`")
        build(plugin, SDK / "c" / "build.sh")
    elif language == "assemblyscript":
        if shutil.which("node") is None:
            pytest.fail("node is needed to build AssemblyScript plugins: run `make toolchains`")
        build(plugin, SDK / "assemblyscript" / "build.sh")
    report = check_plugin(
        settings,
        plugin,
        grants=["events.subscribe"],
        events=read_events(job_events(tmp_path, 4)),
        client=redis_client,
    )
    assert report.status == "ok", report.to_dict()
    assert report.render, report.to_dict()
    assert validate_elements(report.render) == report.render


# -- any input: the schema answers or names the problem, nothing else ----------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
field_names = st.sampled_from(sorted({f for t in TYPES.values() for f in t.by_name} | {"type"}))


def judged(elements: Any) -> None:
    try:
        assert validate_elements(elements) is elements
    except ElementError as error:
        assert error.path.startswith("[") or not isinstance(elements, list)
        assert error.reason


@hypothesis_settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_is_accepted_or_named(value: Any) -> None:
    judged(value)
    judged([value])


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.integers(0, len(EVERY_TYPE) - 1), field_names, json_values)
def test_any_field_of_a_valid_element_set_to_anything_is_accepted_or_named(
    index: int, name: str, value: Any
) -> None:
    elements = copy.deepcopy(EVERY_TYPE)
    elements[index][name] = value
    judged(elements)
    elements = copy.deepcopy(EVERY_TYPE)
    elements[-1]["children"][0]["children"][index % 2][name] = value  # nested
    judged(elements)
