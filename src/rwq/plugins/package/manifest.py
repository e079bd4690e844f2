"""The plugin manifest (``manifest.yaml``): what a plugin is, needs and asks to be allowed.

:func:`load_manifest` reads and validates one; every problem found is reported at once in a
:class:`ManifestError`, each with the dotted path of the field at fault
(``resources.max_memory``, ``permissions[2]``).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rwq.errors import RwqError
from rwq.plugins.contract import events as event_catalog
from rwq.plugins.contract import permissions as permission_catalog
from rwq.plugins.package.version import Range, Version, VersionError, parse_range, parse_version
from rwq.printable import has_hidden_characters
from rwq.units import UnitError, parse_duration, parse_size
from rwq.yaml_input import YamlInputError, load_yaml

SUPPORTED_API_VERSIONS = ("v1",)
"""Host API versions this rwq can run plugins for."""

MANIFEST_NAMES = ("manifest.yaml", "manifest.yml")
"""File names a bundle's manifest may have, in the order they are looked for."""

MAX_MANIFEST_BYTES = 256 * 1024
"""Larger manifest files are refused unread."""

ENTRY_EXTENSIONS = {"wasm": ".wasm", "starlark": ".star"}
"""The entry point's extension for each runtime."""

MIN_EVENT_INTERVAL = 0.1
"""Seconds; a sampled subscription may not ask for events more often than this."""

_NAME = re.compile(r"^[a-z0-9-]+\Z")
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]*\Z")
_OPERATION = re.compile(r"^[A-Za-z0-9_.*?-]+\Z")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_CONFIG_MAX_NODES = 10_000


class ManifestError(RwqError):
    """A manifest is malformed; ``problems`` lists every ``(field_path, reason)`` found."""

    def __init__(self, path: Path | str, problems: Sequence[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(
            "\n".join(
                f"{self.path}: {field}: {reason}" if field else f"{self.path}: {reason}"
                for field, reason in self.problems
            )
        )


# -- field types ---------------------------------------------------------------------------


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _to_version(value: object) -> Version:
    if isinstance(value, Version):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"expected a version string like 1.2.3, got {_describe(value)} (quote it in YAML)"
        )
    try:
        return parse_version(value)
    except VersionError as exc:
        raise ValueError(exc.reason) from None


def _to_range(value: object) -> Range:
    if isinstance(value, Range):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"expected a version range like '>=1.0.0' or '^1.2', got {_describe(value)}"
        )
    try:
        return parse_range(value)
    except VersionError as exc:
        raise ValueError(exc.reason) from None


def _to_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a size like 10MB or 512KiB, got {_describe(value)}")
    try:
        return parse_size(value)
    except UnitError:
        raise ValueError(f"expected a size like 10MB or 512KiB, got {_describe(value)}") from None


def _to_seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration like 500ms, 30s or 5m, got {_describe(value)}")
    try:
        seconds = parse_duration(value)
    except UnitError:
        raise ValueError(
            f"expected a duration like 500ms, 30s or 5m, got {_describe(value)}"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be more than 0, got {value!r}")
    return seconds


def _to_percent(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a CPU share like 5%, got {_describe(value)}")
    text = str(value).strip()
    try:
        percent = float(text.removesuffix("%").strip())
    except ValueError:
        raise ValueError(f"expected a CPU share like 5%, got {value!r}") from None
    if not (math.isfinite(percent) and 0 < percent <= 100):
        raise ValueError(f"must be more than 0% and at most 100%, got {value!r}")
    return percent


def _shown_text(value: str, *, multiline: bool = False) -> str:
    """``value`` unless it holds a character that controls a terminal or hides text (C0, ESC,
    C1, bidi controls, lone surrogates; line feeds and tabs only where ``multiline``)."""
    hidden = has_hidden_characters(
        value.replace("\n", "").replace("\t", "") if multiline else value
    )
    if hidden is not None:
        raise ValueError(
            f"contains the control character {hidden}: write plain text (it is shown on screen)"
        )
    return value


def _multiline_text(value: str) -> str:
    return _shown_text(value, multiline=True)


def _to_globs(value: object) -> object:
    # A lone string is a common slip for a one-element list; accept it rather than
    # reporting a type error the author has to decode.
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and not value:
        raise ValueError("list at least one glob ('*' for all)")
    return value


def _check_glob(glob: str) -> str:
    if not glob or len(glob) > 200 or any(c.isspace() or not c.isprintable() for c in glob):
        raise ValueError(f"{glob!r} is not a glob: 1-200 characters without spaces")
    return glob


VersionField = Annotated[
    Version,
    PlainValidator(_to_version),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "a semantic version, e.g. 1.2.3"}),
]
RangeField = Annotated[
    Range,
    PlainValidator(_to_range),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "a version range, e.g. >=1.0.0 <2"}),
]
Size = Annotated[int, BeforeValidator(_to_size)]
Seconds = Annotated[float, BeforeValidator(_to_seconds)]
Globs = Annotated[tuple[str, ...], BeforeValidator(_to_globs)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sections ------------------------------------------------------------------------------


class Resources(_Model):
    """Limits the host enforces on the plugin."""

    max_memory: Size = parse_size("16MB")
    """Bytes of linear memory (WASM) or heap (Starlark)."""
    max_cpu: Annotated[float, BeforeValidator(_to_percent)] = 10.0
    """Percent of one CPU, averaged."""
    timeout: Seconds = 5.0
    """Seconds one call into the plugin may run."""
    max_storage: Size = parse_size("1MB")
    """Bytes in the plugin's key-value store."""
    max_storage_keys: Annotated[int, Field(strict=True, ge=0)] = 1000

    @field_validator("max_memory")
    @classmethod
    def _one_page(cls, value: int) -> int:
        if value < 64 * 1024:
            raise ValueError(f"must be at least 64KiB (one WebAssembly page), got {value} bytes")
        return value


class UI(_Model):
    """How the plugin's panel is laid out."""

    panel_title: Annotated[str, Field(max_length=80), AfterValidator(_shown_text)] = ""
    """Shown in the panel's border; empty means the plugin's name."""
    min_width: Annotated[int, Field(strict=True, ge=1, le=1000)] = 20
    min_height: Annotated[int, Field(strict=True, ge=1, le=1000)] = 5
    resizable: Annotated[bool, Field(strict=True)] = True


class EventSubscription(_Model):
    """Events the plugin wants delivered."""

    type: str
    """An event type or pattern: ``job.completed``, ``job.*``, ``plugin.alert-manager.*``."""
    queues: Globs = ("*",)
    """Queue globs the events must come from."""
    interval: Seconds | None = None
    """For sampled types (``queue.stats``): how often to deliver one."""

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            return event_catalog.check_pattern(value)
        except event_catalog.EventTypeError as exc:
            raise ValueError(exc.reason) from None

    @field_validator("queues")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_glob(g) for g in value)

    @field_validator("interval")
    @classmethod
    def _sampled_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        pattern = info.data.get("type")
        if pattern is not None:
            match = event_catalog.glob_matcher(pattern)
            if not any(match(t) for t in event_catalog.SAMPLED):
                sampled = ", ".join(sorted(event_catalog.SAMPLED))
                raise ValueError(f"only sampled event types ({sampled}) take an interval")
        if value < MIN_EVENT_INTERVAL:
            raise ValueError(f"must be at least {MIN_EVENT_INTERVAL * 1000:.0f}ms")
        return value


class Dependency(_Model):
    """Another plugin this one needs loaded first."""

    name: str
    version: RangeField = parse_range("*")
    optional: Annotated[bool, Field(strict=True)] = False

    @field_validator("name")
    @classmethod
    def _plugin_name(cls, value: str) -> str:
        return _check_name(value)


class PermissionScope(_Model):
    """What a requested permission should be limited to."""

    queues: Globs = ("*",)
    operations: Globs = ("*",)

    @field_validator("queues")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_glob(g) for g in value)

    @field_validator("operations")
    @classmethod
    def _operations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for op in value:
            if not _OPERATION.match(op):
                raise ValueError(f"{op!r} is not an operation name or glob")
        return value


class PermissionRequest(_Model):
    """One permission the plugin asks for: a catalog name, optionally scoped.

    In YAML either a bare name (``- admin.queue.peek``) or an object
    (``- {name: admin.queue.peek, scope: {queues: ["tenant.*"]}}``).
    """

    name: str
    scope: PermissionScope = PermissionScope()

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: object) -> object:
        if isinstance(data, str):
            _check_permission(data)  # reported at permissions[i], not permissions[i].name
            return {"name": data}
        if not isinstance(data, dict | PermissionRequest):
            raise ValueError(
                f"expected a permission name or {{name, scope}}, got {_describe(data)}"
            )
        return data

    @field_validator("name")
    @classmethod
    def _in_catalog(cls, value: str) -> str:
        return _check_permission(value)

    @field_validator("scope")
    @classmethod
    def _queue_scoped(cls, value: PermissionScope, info: ValidationInfo) -> PermissionScope:
        name = info.data.get("name")
        queue_scoped = name is None or permission_catalog.get(name).queue_scoped
        if value.queues != ("*",) and not queue_scoped:
            raise ValueError(f"{name} is not queue-scoped; remove scope.queues")
        return value

    @property
    def queues(self) -> tuple[str, ...]:
        """The queue globs asked for (``("*",)`` when unscoped)."""
        return self.scope.queues

    @property
    def operations(self) -> tuple[str, ...]:
        return self.scope.operations


def _check_name(value: str) -> str:
    if not _NAME.match(value) or len(value) > 64 or value.startswith("-") or value.endswith("-"):
        raise ValueError(
            f"{value!r} is not a plugin name: 1-64 of a-z, 0-9 and '-', not starting or "
            "ending with '-'"
        )
    return value


def _check_permission(name: str) -> str:
    if name in permission_catalog.CATALOG:
        return name
    if name.upper() in permission_catalog.Level.__members__:
        raise ValueError(f"{name!r} is a level, not a permission; list the permissions needed")
    close = difflib.get_close_matches(name, permission_catalog.CATALOG, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown permission {name!r}{hint} "
        f"(known: {', '.join(sorted(permission_catalog.CATALOG))})"
    )


# -- the manifest --------------------------------------------------------------------------


class PluginManifest(_Model):
    """A validated ``manifest.yaml``: the design document's format, every field checked."""

    name: str
    version: VersionField
    api_version: str
    description: Annotated[str, Field(max_length=4000), AfterValidator(_multiline_text)] = ""
    author: Annotated[str, Field(max_length=200), AfterValidator(_shown_text)] = ""
    license: Annotated[str, Field(max_length=100), AfterValidator(_shown_text)] = ""
    homepage: Annotated[str, Field(max_length=2000), AfterValidator(_shown_text)] = ""
    tags: tuple[str, ...] = ()
    runtime: Literal["wasm", "starlark"]
    entry_point: Annotated[str, AfterValidator(_shown_text)]
    """Path of the module (``.wasm``) or script (``.star``) inside the bundle."""
    permissions: tuple[PermissionRequest, ...] = ()
    resources: Resources = Resources()
    ui: UI = UI()
    events: tuple[EventSubscription, ...] = ()
    dependencies: tuple[Dependency, ...] = ()
    config: dict[str, Any] = Field(default_factory=dict)
    """Default configuration handed to the plugin's ``initialize``."""

    @field_validator("name")
    @classmethod
    def _plugin_name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("api_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_API_VERSIONS:
            raise ValueError(
                f"unsupported api_version {value!r}; this rwq supports: "
                f"{', '.join(SUPPORTED_API_VERSIONS)}"
            )
        return value

    @field_validator("homepage")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+\S*\Z", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            if not _TAG.match(tag) or len(tag) > 40:
                raise ValueError(f"tag {tag!r}: use 1-40 lowercase letters, digits and '-'")
        return value

    @field_validator("entry_point")
    @classmethod
    def _entry_point(cls, value: str, info: ValidationInfo) -> str:
        path = PurePosixPath(value)
        if (
            not value
            or "\\" in value
            or path.is_absolute()
            or _WINDOWS_DRIVE.match(value)
            or any(part in ("", ".", "..") for part in value.split("/"))
        ):
            raise ValueError(
                f"{value!r} must be a relative path inside the bundle, without '..', '.' or '\\'"
            )
        runtime = info.data.get("runtime")
        if runtime in ENTRY_EXTENSIONS and path.suffix != ENTRY_EXTENSIONS[runtime]:
            raise ValueError(
                f"the {runtime} runtime needs a {ENTRY_EXTENSIONS[runtime]} entry point, "
                f"got {value!r}"
            )
        return value

    @field_validator("permissions")
    @classmethod
    def _distinct_permissions(
        cls, value: tuple[PermissionRequest, ...]
    ) -> tuple[PermissionRequest, ...]:
        _refuse_duplicates([p.name for p in value], "permission")
        return value

    @field_validator("events")
    @classmethod
    def _subscribe_allowed(
        cls, value: tuple[EventSubscription, ...], info: ValidationInfo
    ) -> tuple[EventSubscription, ...]:
        requested = info.data.get("permissions")
        if (
            value
            and requested is not None
            and "events.subscribe" not in {p.name for p in requested}
        ):
            raise ValueError("subscribing to events needs the events.subscribe permission")
        return value

    @field_validator("dependencies")
    @classmethod
    def _distinct_dependencies(
        cls, value: tuple[Dependency, ...], info: ValidationInfo
    ) -> tuple[Dependency, ...]:
        _refuse_duplicates([d.name for d in value], "dependency")
        if info.data.get("name") in {d.name for d in value}:
            raise ValueError("a plugin cannot depend on itself")
        return value

    @field_validator("config", mode="before")
    @classmethod
    def _json_like(cls, value: object) -> object:
        if isinstance(value, dict):
            _check_json_like(value, "", [0])
        return value

    def __hash__(self) -> int:
        # The derived hash would fail on ``config`` (a dict); name and version suffice.
        return hash((self.name, self.version))

    def requested_permissions(self) -> tuple[str, ...]:
        """The names of the permissions asked for, in manifest order."""
        return tuple(p.name for p in self.permissions)


def _refuse_duplicates(names: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise ValueError(f"{what} {name!r} is listed twice (entries {seen[name]} and {index})")
        seen[name] = index


def _check_json_like(value: object, where: str, count: list[int]) -> None:
    # Config crosses the sandbox boundary as JSON: YAML dates, sets or non-string keys
    # would not survive the trip, so refuse them here with their location.
    count[0] += 1
    if count[0] > _CONFIG_MAX_NODES:
        raise ValueError(f"more than {_CONFIG_MAX_NODES} values")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"key {key!r} at {where or 'top level'} must be a string")
            _check_json_like(item, f"{where}.{key}" if where else key, count)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_like(item, f"{where}[{index}]", count)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a JSON number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError(f"{where}: a {type(value).__name__} is not allowed (use a string)")


# -- reading -------------------------------------------------------------------------------


def parse_manifest(data: object, source: Path | str = "<manifest>") -> PluginManifest:
    """Validate ``data`` (the parsed YAML) as a manifest from ``source``.

    Raises:
        ManifestError: listing every problem found.
    """
    if not isinstance(data, dict):
        raise ManifestError(source, [("", f"expected a mapping of fields, got {_describe(data)}")])
    try:
        return PluginManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(source, _problems(exc)) from None


def parse_manifest_yaml(text: str | bytes, source: Path | str = "<manifest>") -> PluginManifest:
    """Parse and validate the YAML ``text`` of a manifest from ``source``.

    The manifests parsed last are kept by their text: a hot reload reads the manifest again
    at every save of a plugin's code, and parsing YAML is most of what that costs. A
    manifest is immutable, so the same one can be handed out again."""
    return _parse_manifest_yaml(text, str(source))


@functools.lru_cache(maxsize=64)
def _parse_manifest_yaml(text: str | bytes, source: str) -> PluginManifest:
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(source, [("", f"larger than {MAX_MANIFEST_BYTES // 1024} KiB")])
    try:
        data = load_yaml(text, source)
    except YamlInputError as exc:
        where = f"at {exc.where}: " if exc.where else ""
        raise ManifestError(source, [("", f"{where}{exc.reason}")]) from None
    return parse_manifest(data, source)


def find_manifest(directory: Path) -> Path | None:
    """The manifest file of the bundle directory ``directory``, if it has one."""
    for name in MANIFEST_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def load_manifest(path: Path) -> PluginManifest:
    """Read and validate the manifest at ``path`` (a file, or a directory holding
    ``manifest.yaml`` or ``manifest.yml``).

    Raises:
        ManifestError: the file is missing, unreadable or invalid (every problem at once).
    """
    path = Path(path)
    if path.is_dir():
        found = find_manifest(path)
        if found is None:
            raise ManifestError(path, [("", f"no {' or '.join(MANIFEST_NAMES)} here")])
        path = found
    try:
        with path.open("rb") as fh:
            text = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(path, [("", f"cannot read: {exc.strerror or exc}")]) from None
    return parse_manifest_yaml(text, path)


# -- error paths ---------------------------------------------------------------------------


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    return [
        (_path(e["loc"]), _reason(e["type"], e["msg"], e["loc"], e.get("input")))
        for e in error.errors(include_url=False)
    ]


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _reason(kind: str, message: str, loc: tuple[int | str, ...], value: object) -> str:
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown field{hint} (known: {', '.join(known)})" if known else "unknown field"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_describe(value)}"
    if message.startswith("Input should be "):
        return f"must be {message[len('Input should be ') :]}, got {_describe(value)}"
    return message


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found at ``loc`` (for "did you mean")."""
    model: type[BaseModel] | None = PluginManifest
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
