"""A registry's index (``index.json``): every plugin it serves, each version's bundle (a path
inside the registry), SHA-256, size, API version, dependencies and signer.

An index is hostile until checked: :func:`parse_index` refuses anything off its strict shape
(unknown fields, oversize text, bad names, versions or ranges, and bundle paths that could
leave the registry) naming the field at fault.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from rwq.plugins.package.version import Version, VersionError, parse_range, parse_version
from rwq.plugins.registry.errors import RegistryError
from rwq.queue.keys import InvalidPluginName, check_plugin_name

__all__ = [
    "INDEX_FILE",
    "INDEX_FORMAT",
    "MAX_BUNDLE_BYTES",
    "MAX_INDEX_BYTES",
    "PluginEntry",
    "RegistryIndex",
    "Release",
    "Signer",
    "dump_index",
    "parse_index",
]

INDEX_FILE = "index.json"
"""The index's name at the registry's root."""
INDEX_FORMAT: Literal[1] = 1
"""The index format this rwq reads and writes (the ``format`` field)."""
MAX_INDEX_BYTES = 8 * 1024 * 1024
"""A larger index is refused unread (its download stops at this size)."""
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
"""The largest bundle a registry may serve: a zip bundle's own limit."""
MAX_PLUGINS = 10_000
MAX_VERSIONS = 1_000
MAX_DEPENDENCIES = 64

_BUNDLE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}\Z")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})\Z")
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _plugin_name(value: str) -> str:
    try:
        return check_plugin_name(value)
    except InvalidPluginName:
        raise ValueError(f"not a plugin name: {value!r}") from None


def _version_text(value: str) -> str:
    try:
        parse_version(value)
    except VersionError as exc:
        raise ValueError(str(exc)) from None
    return value


def _range_text(value: str) -> str:
    try:
        parse_range(value)
    except VersionError as exc:
        raise ValueError(str(exc)) from None
    return value


def _bundle_path(value: str) -> str:
    """A relative path of plain names inside the registry: never absolute, ``..``, a URL or
    another host."""
    parts = value.split("/")
    if len(parts) > 8 or not all(_BUNDLE_PART.match(p) for p in parts) or ".." in value:
        raise ValueError(
            f"{value!r} is not a path inside the registry (relative, plain names, no '..')"
        )
    if not value.endswith(".zip"):
        raise ValueError(f"{value!r}: a bundle is a .zip file")
    return value


def _shown_text(value: str) -> str:
    if _HIDDEN.search(value):
        raise ValueError("control or invisible characters are not allowed")
    return value


def _published(value: str) -> str:
    if not _TIME.match(value):
        raise ValueError(f"expected an ISO 8601 time like 2026-01-31T12:00:00Z, got {value!r}")
    return value


PluginName = Annotated[str, AfterValidator(_plugin_name)]
VersionText = Annotated[str, Field(max_length=256), AfterValidator(_version_text)]
RangeText = Annotated[str, Field(max_length=256), AfterValidator(_range_text)]
ShortText = Annotated[str, Field(max_length=200), AfterValidator(_shown_text)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Signer(_Model):
    """Who signed a version's bundle when it was published (as its signature says)."""

    name: ShortText
    fingerprint: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{32}$")]


class Release(_Model):
    """One version of a plugin in the index."""

    bundle: Annotated[str, Field(max_length=1024), AfterValidator(_bundle_path)]
    """The bundle's path, relative to the registry's root."""
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # pydantic's regex: $ ends text
    size: Annotated[int, Field(ge=1, le=MAX_BUNDLE_BYTES)]
    api_version: Annotated[str, Field(max_length=32), AfterValidator(_shown_text)]
    dependencies: Annotated[dict[PluginName, RangeText], Field(max_length=MAX_DEPENDENCIES)] = {}
    """The plugin's required dependencies: name -> version range."""
    signer: Signer | None = None
    published: Annotated[str, AfterValidator(_published)]


class PluginEntry(_Model):
    """A plugin in the index: what its newest version says of it, and every version."""

    description: Annotated[str, Field(max_length=4000), AfterValidator(_shown_text)] = ""
    publisher: ShortText = ""
    """The ``author`` of its newest version's manifest (a claim; a release's ``signer`` is
    what its signature proved)."""
    versions: Annotated[dict[VersionText, Release], Field(max_length=MAX_VERSIONS)]

    def sorted_versions(self) -> list[tuple[Version, Release]]:
        """Its versions, oldest first."""
        return sorted(((parse_version(v), r) for v, r in self.versions.items()), key=lambda p: p[0])

    @field_validator("versions")
    @classmethod
    def _distinct(cls, value: dict[str, Release]) -> dict[str, Release]:
        seen: dict[Version, str] = {}
        for text in value:
            version = parse_version(text)
            if version in seen:  # 1.0.0 and 1.0.0+build are one version
                raise ValueError(f"{text!r} and {seen[version]!r} are the same version")
            seen[version] = text
        return value


class RegistryIndex(_Model):
    """A registry's ``index.json``."""

    format: Literal[1]
    plugins: Annotated[dict[PluginName, PluginEntry], Field(max_length=MAX_PLUGINS)] = {}


def parse_index(data: bytes, source: str) -> RegistryIndex:
    """The index in ``data`` (the bytes of ``index.json`` read from ``source``).

    Raises:
        RegistryError: not JSON, another format, or a field off its shape (named).
    """
    if len(data) > MAX_INDEX_BYTES:
        raise RegistryError(source, f"{INDEX_FILE} is over {MAX_INDEX_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(source, f"{INDEX_FILE} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RegistryError(source, f"{INDEX_FILE}: expected an object")
    if document.get("format") != INDEX_FORMAT:
        raise RegistryError(
            source,
            f"{INDEX_FILE}: format {document.get('format')!r} is not one this rwq reads "
            f"({INDEX_FORMAT})",
        )
    try:
        return RegistryIndex.model_validate(document)
    except ValidationError as exc:
        raise RegistryError(source, f"{INDEX_FILE}: {_problems(exc)}") from None


SHOWN_PROBLEMS = 5
"""Most problems of an index one error message lists."""


def _problems(error: ValidationError) -> str:
    """Every problem of ``error`` on one line, unknown fields first (a misspelt field is
    also a missing one: the unknown name says which)."""
    found = sorted(error.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    said = []
    for problem in found[:SHOWN_PROBLEMS]:
        where = ".".join(str(p) for p in problem["loc"]) or "(top)"
        reason = (
            "unknown field"
            if problem["type"] == "extra_forbidden"
            else str(problem["msg"]).removeprefix("Value error, ")
        )
        said.append(f"{where}: {reason}")
    more = f"; and {len(found) - SHOWN_PROBLEMS} more" if len(found) > SHOWN_PROBLEMS else ""
    return "; ".join(said) + more


def dump_index(index: RegistryIndex) -> bytes:
    """``index`` as ``index.json``: indented, keys sorted, so a publish changes few lines."""
    data = index.model_dump(mode="json")
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()
