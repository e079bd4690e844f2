"""A registry's index is hostile until checked: its shape, its caps and its bundle paths."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rwq.plugins.registry.errors import RegistryError
from rwq.plugins.registry.index import MAX_INDEX_BYTES, dump_index, parse_index

SHA = "ab" * 32


def _index(bundle: str = "bundles/a/a-1.0.0.zip", **release: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "plugins": {
            "a": {
                "description": "A",
                "publisher": "acme",
                "versions": {
                    "1.0.0": {
                        "bundle": bundle,
                        "sha256": SHA,
                        "size": 10,
                        "api_version": "v1",
                        "dependencies": {"b": "^1.2"},
                        "signer": None,
                        "published": "2026-01-31T12:00:00Z",
                        **release,
                    }
                },
            }
        },
    }


def _parse(document: object) -> Any:
    return parse_index(json.dumps(document).encode(), "https://r.example/index.json")


def test_a_good_index_reads_and_writes_back_the_same() -> None:
    index = _parse(_index())
    release = index.plugins["a"].versions["1.0.0"]
    assert release.dependencies == {"b": "^1.2"} and release.size == 10
    assert parse_index(dump_index(index), "again") == index


@pytest.mark.parametrize(
    "bundle",
    [
        "../outside.zip",
        "bundles/../../etc/x.zip",
        "/etc/passwd.zip",
        "https://evil.example/a.zip",
        "//evil.example/a.zip",
        "bundles\\a.zip",
        "bundles/a/./a.zip",
        "bundles/a/a.tar",
        "",
    ],
)
def test_a_bundle_path_that_could_leave_the_registry_is_refused(bundle: str) -> None:
    with pytest.raises(RegistryError) as caught:
        _parse(_index(bundle))
    assert "plugins.a.versions.1.0.0.bundle" in str(caught.value)
    assert str(caught.value).startswith("https://r.example/index.json: index.json: ")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sha256": "xyz"}, "sha256"),
        ({"size": 0}, "size"),
        ({"size": 10**12}, "size"),
        ({"size": "10"}, "size"),
        ({"dependencies": {"B!": "^1"}}, "dependencies"),
        ({"dependencies": {"b": "^^1"}}, "dependencies.b"),
        ({"published": "yesterday"}, "published"),
        ({"signer": {"name": "x", "fingerprint": "md5:1"}}, "signer.fingerprint"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_malformed_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryError) as caught:
        _parse(_index(**change))
    assert f"plugins.a.versions.1.0.0.{field}" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "index.json is not JSON"),
        (b"[]", "expected an object"),
        (b'{"format": 2, "plugins": {}}', "format 2 is not one this rwq reads"),
        (b'{"format": 1, "plugins": {"Bad Name": {"versions": {}}}}', "plugins.Bad Name"),
        (b'{"format": 1, "plugins": {"a": {"versions": {"1.0": {}}}}}', "plugins.a.versions.1.0"),
        (b"\xff\xfe", "index.json is not JSON"),
    ],
)
def test_a_malformed_index_is_one_clear_error(data: bytes, reason: str) -> None:
    with pytest.raises(RegistryError, match=r"^reg: ") as caught:
        parse_index(data, "reg")
    assert reason in str(caught.value)


def test_text_that_could_drive_a_terminal_is_refused() -> None:
    document = _index()
    document["plugins"]["a"]["description"] = "fine\x1b]0;pwned\x07"
    with pytest.raises(RegistryError, match=r"plugins\.a\.description"):
        _parse(document)


def test_an_oversize_index_is_refused_unread() -> None:
    with pytest.raises(RegistryError, match="over"):
        parse_index(b" " * (MAX_INDEX_BYTES + 1), "reg")


def test_one_version_spelled_twice_is_refused() -> None:
    document = _index()
    versions = document["plugins"]["a"]["versions"]
    versions["1.0.0+build"] = versions["1.0.0"]
    with pytest.raises(RegistryError, match="same version"):
        _parse(document)


def test_an_unknown_field_is_named_not_hidden_behind_the_field_it_misspells() -> None:
    """`version` for `versions` said "plugins.a.versions: Field required (and 1 more)"."""
    document = _index()
    document["plugins"]["a"]["version"] = document["plugins"]["a"].pop("versions")
    with pytest.raises(RegistryError) as caught:
        _parse(document)
    assert str(caught.value) == (
        "https://r.example/index.json: index.json: plugins.a.version: unknown field; "
        "plugins.a.versions: Field required"
    )
