"""YAML written by people, read strictly: every problem a YamlInputError naming the place."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwq.yaml_input import MAX_DEPTH, YamlInputError, load_yaml, read_yaml


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("a: !!bool maybe\n", "line 1, column 4", "!!bool cannot read 'maybe'"),
        ("a: !!int abc\n", "line 1, column 4", "!!int cannot read 'abc'"),
        ("a: !!timestamp foo\n", "line 1, column 4", "!!timestamp cannot read 'foo'"),
        ("a: !!float x\n", "line 1, column 4", "!!float cannot read"),
        ('a: "\\udc80"\n', "line 1, column 4", "lone surrogate"),
        ('"\\ud800": 1\n', "line 1, column 1", "lone surrogate"),
        ("a: &x [1]\nb: *x\n", "line 2, column 4", "aliases"),
        ("a: 1\na: 2\n", "line 2, column 1", "duplicate key 'a'"),
        ("a: [1,\n", "line 2, column 1", "invalid YAML"),
        ("x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "line 1", "nested more than"),
        ("a: !!python/object:os.system x\n", "line 1, column 4", "invalid YAML"),
    ],
)
def test_bad_yaml_names_line_and_column(text: str, where: str, reason: str) -> None:
    with pytest.raises(YamlInputError) as info:
        load_yaml(text, "f.yaml")
    assert info.value.where.startswith(where)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"f.yaml: {where}")


def test_files_not_found_unreadable_too_large_or_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(YamlInputError, match=r"nope.yaml: file not found"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(YamlInputError, match="cannot read"):
        read_yaml(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 2000)
    with pytest.raises(YamlInputError, match="larger than 1 KiB"):
        read_yaml(big, max_bytes=1024)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(YamlInputError, match=r"latin.yaml: not UTF-8 text \(byte 9"):
        read_yaml(latin)


def test_good_yaml_reads() -> None:
    assert load_yaml("a: [1, 2.5, true, null, x]\nb: {c: 2020-01-01}\n", "f") == {
        "a": [1, 2.5, True, None, "x"],
        "b": {"c": __import__("datetime").date(2020, 1, 1)},
    }


yaml_tokens = st.sampled_from(
    ["a", ": ", "- ", "[", "]", "{", "}", ",", "\n", "  ", "!!int ", "!!bool ", "!!float ",
     "!!timestamp ", "!!binary ", "!!set ", "!!omap ", "!!python/name:x ", "&a ", "*a", "? ",
     "'", '"', "\\u", "\\ud800", "#", "|", ">", "---", "...", "%YAML 1.1", "1e400", ".nan",
     "0x", "0o9", "~", "<<: ", "="]
)  # fmt: skip


@pytest.mark.fuzz
@given(st.lists(st.one_of(yaml_tokens, st.text(max_size=4)), max_size=40).map("".join))
def test_any_text_loads_or_is_a_yaml_input_error(text: str) -> None:
    try:
        load_yaml(text, "f.yaml")
    except YamlInputError as error:
        assert str(error).startswith("f.yaml: ")


@pytest.mark.fuzz
@given(st.binary(max_size=200))
def test_any_bytes_load_or_are_a_yaml_input_error(data: bytes) -> None:
    with contextlib.suppress(YamlInputError):
        load_yaml(data, "f.yaml")


def test_a_json_style_surrogate_pair_is_one_character() -> None:
    assert load_yaml('a: "\\ud83d\\ude00 ok"\n', "f") == {"a": "\U0001f600 ok"}
