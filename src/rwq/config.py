"""Settings: one object built from ``rwq.yaml``, then ``RWQ_*`` variables, then flags."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rwq.errors import ConfigError
from rwq.schedule_spec import ScheduleSpec, format_schedules, parse_schedules
from rwq.units import (
    UnitError,
    format_rate,
    parse_duration,
    parse_positive_duration,
    parse_rate,
)
from rwq.yaml_input import YamlInputError, read_yaml

CONFIG_FILE = "rwq.yaml"
ENV_PREFIX = "RWQ_"
MAX_EVENT_LABELS = 4
MAX_CONFIG_BYTES = 1024 * 1024
MAX_TIMEOUT_S = 30 * 86400.0
"""Seconds: the longest job timeout (30 days; a longer one is a typo)."""
_LABEL_NAME = re.compile(r"^[^\s,\x00-\x1f\x7f]{1,64}\Z")


def default_state_dir() -> Path:
    """The XDG state directory of rwq (``$XDG_STATE_HOME/rwq``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rwq"


@dataclass(frozen=True)
class Settings:
    """Everything a rwq process is configured with; passed down, never read from globals."""

    redis_url: str | None = None
    """``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://``; None = embedded Valkey."""
    state_dir: Path = field(default_factory=default_state_dir)
    persistence: bool = True
    """Persistence of the embedded server (AOF); tests turn it off."""
    fsync: str = "everysec"
    """When the embedded server's append-only file reaches the disk: ``everysec`` (once a
    second: a killed process loses nothing, a power loss up to a second of writes) or
    ``always`` (before every reply: nothing acknowledged is lost, at a cost per write)."""
    prefix: str = "rwq"
    payload_limit: int = 512 * 1024
    history_limit: int = 1000
    events_maxlen: int = 10_000
    heartbeat_interval: float = 1.0
    heartbeat_ttl: float = 10.0
    reaper_interval: float = 5.0
    max_retries: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    shutdown_timeout: float = 30.0
    """Seconds a stopping worker waits for its running handlers before it hands their jobs
    back to their queues and exits."""
    socket_timeout: float = 3.0
    """Seconds a client waits for a reply from Redis before it gives the try up."""
    socket_connect_timeout: float = 1.0
    """Seconds a client waits for a connection to Redis to open."""
    redis_retries: int = 2
    """Further tries of one command after a connection error, a timeout or a cluster error
    (cluster down, slot moved, failover) before the error reaches rwq: a producer's whole
    budget, so ``rwq enqueue`` fails within about ``(redis_retries + 1) *
    (socket_connect_timeout or socket_timeout)`` seconds when Redis is away."""
    outage_backoff_max: float = 5.0
    """Longest wait between tries of a long-running process (worker, reaper, TUI, plugin host,
    demo) while Redis is away; the wait doubles from 0.1 s up to this."""
    queue_timeouts: str = ""
    """How long a handler of each named queue may run when its job sets no timeout of its own
    (overriding the worker's ``--timeout``): ``queue=duration`` pairs separated by commas
    (``mail=30s,video=10m``), or a mapping in ``rwq.yaml``. Kept in that text form."""
    result_ttl: float = 3600.0
    """Seconds a completed job stays findable by its id with its result (``rwq admin job``,
    ``rwq job wait``, ``JobHandle.result``); 0 deletes it when it completes. A job may set
    its own (``Producer.enqueue(..., result_ttl=...)``)."""
    result_max_bytes: int = 64 * 1024
    """The largest result kept (its JSON encoding); a larger one is replaced by a note."""
    rate_limits: str = ""
    """How many jobs of each named queue may start per period, across all workers:
    ``queue=count/period`` pairs separated by commas (``emails=100/1m,sms=10/1s``), or a
    mapping in ``rwq.yaml``. A limit stored with ``rwq admin rate-limit`` wins over it. Kept in
    that text form."""
    read_only: bool = False
    plugin_dirs: str = ""
    """Directories searched for plugins besides the user's installed ones, separated by ':'.
    Nothing else is searched: the current directory never is."""
    plugin_signatures: str = "warn"
    """What a plugin's signature must be for it to load: ``off`` (not looked at), ``warn``
    (unsigned, untrusted or invalid plugins load; their signature is shown wherever the plugin
    is, and ``rwq plugin install`` warns) or ``require`` (only plugins signed by a trusted
    publisher key load)."""
    plugin_registries: tuple[str, ...] = ()
    """Plugin registries ``rwq plugin search|install|outdated|update`` read, in order: each an
    ``http://`` or ``https://`` URL, or a directory (a path or a ``file://`` URL). A list in
    ``rwq.yaml``; ``RWQ_PLUGIN_REGISTRIES`` separates them with commas. A plugin name belongs
    to the first registry that lists it."""
    event_labels: str = "kind,type"
    """Top-level payload fields copied (scalars only) into a job's ``labels``, which every
    job event carries: at most 4, comma-separated (a list in ``rwq.yaml``); empty disables."""
    schedules: str = ""
    """Periodic jobs, synced into Redis when a scheduler starts: a mapping of name to options
    in ``rwq.yaml`` (see :class:`rwq.schedule_spec.ScheduleSpec`), JSON in
    ``RWQ_SCHEDULES``. Kept as canonical JSON text."""

    def __post_init__(self) -> None:
        try:  # kept as one canonical string, so str() of it recreates it (worker env)
            labels = ",".join(parse_event_labels(self.event_labels))
        except ValueError as exc:
            raise ConfigError("settings", "event_labels", str(exc)) from None
        object.__setattr__(self, "event_labels", labels)
        try:
            timeouts = format_queue_timeouts(parse_queue_timeouts(self.queue_timeouts))
        except ValueError as exc:
            raise ConfigError("settings", "queue_timeouts", str(exc)) from None
        object.__setattr__(self, "queue_timeouts", timeouts)
        try:
            rates = format_rate_limits(parse_rate_limits(self.rate_limits))
        except ValueError as exc:
            raise ConfigError("settings", "rate_limits", str(exc)) from None
        object.__setattr__(self, "rate_limits", rates)
        try:
            schedules = format_schedules(parse_schedules(self.schedules))
        except ValueError as exc:
            raise ConfigError("settings", "schedules", str(exc)) from None
        object.__setattr__(self, "schedules", schedules)
        for name in _LIMITS:
            check_range("settings", name, getattr(self, name))
        try:
            registries = parse_registries(self.plugin_registries)
        except ValueError as exc:
            raise ConfigError("settings", "plugin_registries", str(exc)) from None
        object.__setattr__(self, "plugin_registries", registries)
        if self.fsync not in FSYNC_MODES:
            raise ConfigError(
                "settings", "fsync", f"one of {', '.join(FSYNC_MODES)}, got {self.fsync!r}"
            )
        if self.plugin_signatures not in SIGNATURE_MODES:
            raise ConfigError(
                "settings",
                "plugin_signatures",
                f"one of {', '.join(SIGNATURE_MODES)}, got {self.plugin_signatures!r}",
            )
        if not _PREFIX.fullmatch(self.prefix):
            raise ConfigError(
                "settings",
                "prefix",
                f"1-64 of A-Z, a-z, 0-9, '.', '_', ':', '-'; got {self.prefix!r}",
            )
        if self.heartbeat_ttl < 2 * self.heartbeat_interval:
            raise ConfigError(
                "settings",
                "heartbeat_ttl",
                f"must be at least twice heartbeat_interval ({self.heartbeat_interval:g}s), got "
                f"{self.heartbeat_ttl:g}s: a shorter lease lets the reaper take jobs from live "
                "workers",
            )
        if self.backoff_max < self.backoff_base:
            raise ConfigError(
                "settings",
                "backoff_max",
                f"must be at least backoff_base ({self.backoff_base:g}s), got "
                f"{self.backoff_max:g}s",
            )

    @property
    def label_fields(self) -> tuple[str, ...]:
        """The payload fields of :attr:`event_labels`, in order."""
        return tuple(self.event_labels.split(",")) if self.event_labels else ()

    @property
    def schedule_specs(self) -> dict[str, ScheduleSpec]:
        """:attr:`schedules` as name to :class:`ScheduleSpec`."""
        return parse_schedules(self.schedules)

    @property
    def queue_timeout_map(self) -> dict[str, float]:
        """:attr:`queue_timeouts` as queue name to seconds."""
        return parse_queue_timeouts(self.queue_timeouts)

    @property
    def rate_limit_map(self) -> dict[str, tuple[int, float]]:
        """:attr:`rate_limits` as queue name to (jobs, period seconds)."""
        return parse_rate_limits(self.rate_limits)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; ``None`` values are ignored (unset flags)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given)

    @classmethod
    def load(
        cls,
        config_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        **flags: Any,
    ) -> Settings:
        """Build settings from the config file, then the environment, then ``flags``.

        Args:
            config_path: a YAML file; defaults to ``$RWQ_CONFIG`` or ``./rwq.yaml`` if present.
            env: the environment to read ``RWQ_*`` from (``os.environ`` by default).
            flags: command-line values; ``None`` means "not given".
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        path = config_path or (Path(env["RWQ_CONFIG"]) if env.get("RWQ_CONFIG") else None)
        if path is None and Path(CONFIG_FILE).is_file():
            path = Path(CONFIG_FILE)
        if path is not None:
            values.update(_read_file(path))
            origin.update(dict.fromkeys(values, str(path)))
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and (raw != "" or f.name in _EMPTY_IS_A_VALUE):
                variable = f"${ENV_PREFIX}{f.name.upper()}"
                values[f.name] = _coerce(variable, f.name, raw, f.type)
                origin[f.name] = variable
        for name, value in flags.items():
            if value is not None:
                values[name] = value
                origin[name] = "flags"
        try:
            return cls(**values)
        except ConfigError as exc:  # a rule across settings: name where the value came from
            if exc.source != "settings":
                raise
            for field_name in (exc.field, _PAIRED.get(exc.field, "")):
                if field_name in origin:
                    raise ConfigError(origin[field_name], field_name, exc.reason) from None
            raise


_LIMITS: dict[str, tuple[float, float, str]] = {
    "payload_limit": (16, 512 * 1024 * 1024, "bytes"),
    "history_limit": (0, 10_000_000, "jobs"),
    "events_maxlen": (100, 100_000_000, "events"),
    "heartbeat_interval": (0.01, 3600, "s"),
    "heartbeat_ttl": (0.02, 86400, "s"),
    "reaper_interval": (0.01, 3600, "s"),
    "max_retries": (0, 1000, "retries"),
    "backoff_base": (0, 86400, "s"),
    "backoff_max": (0, 30 * 86400, "s"),
    "shutdown_timeout": (0, 86400, "s"),
    "socket_timeout": (0.01, 3600, "s"),
    "socket_connect_timeout": (0.01, 3600, "s"),
    "redis_retries": (0, 100, "retries"),
    "outage_backoff_max": (0.01, 3600, "s"),
    "result_ttl": (0, 30 * 86400, "s"),
    "result_max_bytes": (0, 512 * 1024 * 1024, "bytes"),
}
"""The range of each number setting (a TTL of -5 or a reaper interval of 0 made workers fail
on Redis errors)."""
_PAIRED = {"heartbeat_ttl": "heartbeat_interval", "backoff_max": "backoff_base"}
"""Settings checked against each other: when one is left at its default, the other is
named."""
_PREFIX = re.compile(r"[A-Za-z0-9._:-]{1,64}")
SIGNATURE_MODES = ("off", "warn", "require")
FSYNC_MODES = ("everysec", "always")
"""The embedded server's ``appendfsync`` policies rwq offers (``no`` leaves it to the OS)."""
"""The values of ``plugin_signatures``."""


def check_range(source: str, name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless setting ``name`` is within its range."""
    low, high, unit = _LIMITS[name]
    if not low <= value <= high:
        sep = "" if unit == "s" else " "
        raise ConfigError(
            source, name, f"must be {low:g}{sep}{unit} to {high:g}{sep}{unit}, got {value:g}"
        )


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}
_LIST_SETTINGS = _EMPTY_IS_A_VALUE = {
    "event_labels", "plugin_registries", "queue_timeouts", "rate_limits",
}  # fmt: skip
"""Settings given as a list or a comma-separated string, whose empty ``RWQ_*`` variable
means "none" rather than "not set"."""
_EMPTY_IS_A_VALUE |= {"schedules"}
MAX_REGISTRIES = 16
_REGISTRY_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def parse_registries(raw: Any) -> tuple[str, ...]:
    """The registries of ``plugin_registries``, from a list or a comma-separated string.

    Raises:
        ValueError: an entry is empty, too long, holds control characters, has a scheme other
            than ``http``, ``https`` or ``file``, or is a URL without a host; or there are
            more than :data:`MAX_REGISTRIES`.
    """
    if raw is None:
        return ()
    if isinstance(raw, str):
        entries = [e.strip() for e in raw.split(",")] if raw.strip() else []
    elif isinstance(raw, list | tuple):
        entries = list(raw)
    else:
        raise ValueError(f"expected a list of registry URLs or directories, got {_shown(raw)}")
    for entry in entries:
        if not isinstance(entry, str) or not entry or len(entry) > 2048:
            raise ValueError(
                f"a registry is an http(s):// URL or a directory of 1-2048 characters, got "
                f"{_shown(entry)}"
            )
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in entry) or entry != entry.strip():
            raise ValueError(
                f"a registry may not hold control characters or edge spaces: {entry!r}"
            )
        scheme = _REGISTRY_SCHEME.match(entry)
        if scheme is None:
            continue  # a directory
        kind = scheme.group(1).lower()
        if kind not in ("http", "https", "file"):
            raise ValueError(f"{entry!r}: a registry URL is http://, https:// or file://")
        rest = entry[scheme.end() :]
        if kind != "file" and not rest.split("/", 1)[0]:
            raise ValueError(f"{entry!r}: the URL names no host")
    if len(entries) > MAX_REGISTRIES:
        raise ValueError(f"at most {MAX_REGISTRIES} registries, got {len(entries)}")
    return tuple(dict.fromkeys(entries))


def parse_event_labels(raw: Any) -> tuple[str, ...]:
    """The payload field names of ``event_labels``, from a list or a comma-separated string.

    Raises:
        ValueError: a name is empty, has spaces or control characters, is over 64 characters
            or repeated, or there are more than :data:`MAX_EVENT_LABELS`.
    """
    if raw is None:
        return ()
    if isinstance(raw, str):
        names = [n.strip() for n in raw.split(",")] if raw.strip() else []
    elif isinstance(raw, list | tuple):
        names = list(raw)
    else:
        raise ValueError(f"expected a list or a comma-separated string of field names, got {raw!r}")
    for name in names:
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            raise ValueError(
                f"a label is a payload field name of 1-64 characters without spaces, commas "
                f"or control characters, got {name!r}"
            )
    if len(set(names)) < len(names):
        raise ValueError(f"a field is named twice in {','.join(names)!r}")
    if len(names) > MAX_EVENT_LABELS:
        raise ValueError(f"at most {MAX_EVENT_LABELS} fields, got {len(names)}: {','.join(names)}")
    return tuple(names)


def parse_queue_timeouts(raw: Any) -> dict[str, float]:
    """The per-queue timeouts of ``queue_timeouts``: a mapping of queue name to duration, or
    ``queue=duration`` pairs separated by commas (``mail=30s,video=10m``).

    Raises:
        ValueError: a pair is malformed, a queue is named twice or a timeout is not a
            positive duration of at most 30 days.
    """
    out: dict[str, float] = {}
    for name, value in _queue_pairs(raw, "duration"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"queue {name}: expected a duration like 30s, got {_shown(value)}")
        try:
            out[name] = parse_positive_duration(value, f"queue {name}", MAX_TIMEOUT_S)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
    return out


def _queue_pairs(raw: Any, what: str) -> list[tuple[str, Any]]:
    """The ``(queue, value)`` pairs of a per-queue setting: a mapping, or ``queue=value`` pairs
    separated by commas; each queue named once (``what`` names the value in errors)."""
    if raw is None:
        return []
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, str):
        for item in (p.strip() for p in raw.split(",")):
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"expected queue={what} pairs, got {_shown(item)}")
            pairs.append((name.strip(), value.strip()))
    elif isinstance(raw, Mapping):
        pairs = list(raw.items())
    else:
        raise ValueError(f"expected a mapping of queue to {what}, got {_shown(raw)}")
    seen: set[str] = set()
    for name, _value in pairs:
        if not isinstance(name, str) or not 0 < len(name) <= 200 or "," in name or "=" in name:
            raise ValueError(f"expected a queue name of 1-200 characters, got {_shown(name)}")
        if name in seen:
            raise ValueError(f"queue {name!r} is named twice")
        seen.add(name)
    return pairs


def parse_rate_limits(raw: Any) -> dict[str, tuple[int, float]]:
    """The per-queue rate limits of ``rate_limits``: a mapping of queue name to rate
    (``100/1m``), or ``queue=rate`` pairs separated by commas (``emails=100/1m,sms=10/s``).

    Raises:
        ValueError: a pair is malformed, a queue is named twice or a rate is not
            ``count/period``.
    """
    out: dict[str, tuple[int, float]] = {}
    for name, value in _queue_pairs(raw, "count/period"):
        if not isinstance(value, str):
            raise ValueError(f"queue {name}: expected a rate like 100/1m, got {_shown(value)}")
        try:
            out[name] = parse_rate(value, f"queue {name}")
        except UnitError as exc:
            raise ValueError(str(exc)) from None
    return out


def format_rate_limits(limits: Mapping[str, tuple[int, float]]) -> str:
    """The canonical text of ``rate_limits``, read back by :func:`parse_rate_limits`."""
    return ",".join(f"{name}={format_rate(*rate)}" for name, rate in limits.items())


def format_queue_timeouts(timeouts: Mapping[str, float]) -> str:
    """The canonical text of ``queue_timeouts``, read back by :func:`parse_queue_timeouts`."""
    return ",".join(f"{name}={_plain(seconds)}" for name, seconds in timeouts.items())


def _plain(seconds: float) -> str:
    """``seconds`` without an exponent (``1e-05`` is not a duration)."""
    text = repr(float(seconds))
    return text if "e" not in text else f"{seconds:.17f}".rstrip("0").rstrip(".")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = read_yaml(path, MAX_CONFIG_BYTES)
    except YamlInputError as exc:
        raise ConfigError(str(path), exc.where, exc.reason) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a mapping of settings")
    out: dict[str, Any] = {}
    for key, raw in data.items():
        name = str(key).replace("-", "_")
        if name not in _FIELD_TYPES:
            known = ", ".join(sorted(_FIELD_TYPES))
            raise ConfigError(str(path), str(key), f"unknown setting (known: {known})")
        out[name] = _coerce(str(path), name, raw, _FIELD_TYPES[name])
    return out


def _coerce(source: str, name: str, raw: Any, type_: Any) -> Any:
    """``raw`` (from a file, a variable or a flag) as the type of setting ``name``."""
    kind = str(type_)
    try:
        if name == "plugin_registries":
            return parse_registries(raw)
        if name == "queue_timeouts":
            return format_queue_timeouts(parse_queue_timeouts(raw))
        if name == "rate_limits":
            return format_rate_limits(parse_rate_limits(raw))
        if name == "schedules":
            return format_schedules(parse_schedules(raw))
        if name in _LIST_SETTINGS:
            return ",".join(parse_event_labels(raw))
        if "bool" in kind:
            return _boolean(raw)
        if raw is None and "None" in kind:
            return None
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise ValueError(f"expected {_EXPECTED.get(kind, 'a string')}, got {_shown(raw)}")
        if "Path" in kind:
            return Path(str(raw)).expanduser()
        if "float" in kind:
            try:
                seconds = parse_duration(raw, "value")
            except UnitError as exc:  # the setting is named by the caller: not "value" too
                raise UnitError(str(exc).removeprefix("value: ")) from None
            if name in _LIMITS:
                check_range(source, name, seconds)
            return seconds
        if "int" in kind:
            if isinstance(raw, float) or (isinstance(raw, str) and not raw.strip().isdigit()):
                raise ValueError(f"expected a whole number, got {_shown(raw)}")
            number = int(raw)
            if number > _MAX_INT:
                raise ValueError(f"at most {_MAX_INT}, got {_shown(raw)}")
            if name in _LIMITS:
                check_range(source, name, number)
            return number
        return str(raw)
    except (ValueError, UnitError) as exc:
        raise ConfigError(source, name, str(exc)) from None


_MAX_INT = 2**63 - 1
_EXPECTED = {"float": "a number of seconds (or 500ms, 30s, 5m)", "int": "a whole number"}


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, str | int) else ""
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected a boolean, got {_shown(raw)}")


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else f"{text[:57]}..."
