"""Settings: file, then environment, then flags; bad values name their source."""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from rwq.config import Settings
from rwq.errors import ConfigError


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text("redis_url: redis://file:1\nmax_retries: 7\nhistory-limit: 5\n")
    env = {"RWQ_REDIS_URL": "redis://env:2", "RWQ_READ_ONLY": "yes"}
    s = Settings.load(path, env=env, redis_url="redis://flag:3")
    assert s.redis_url == "redis://flag:3"
    assert s.read_only is True
    assert s.max_retries == 7 and s.history_limit == 5
    assert Settings.load(path, env=env).redis_url == "redis://env:2"
    assert Settings.load(path, env={}).redis_url == "redis://file:1"


def test_unknown_setting_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text("max_retrys: 3\n")
    with pytest.raises(ConfigError) as info:
        Settings.load(path, env={})
    assert str(path) in str(info.value) and "max_retrys" in str(info.value)


def test_bad_env_value_names_variable() -> None:
    with pytest.raises(ConfigError, match=r"\$RWQ_MAX_RETRIES: max_retries: expected a whole"):
        Settings.load(env={"RWQ_MAX_RETRIES": "many"})


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="line 2, column 1: invalid YAML"):
        Settings.load(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        Settings.load(tmp_path / "nope.yaml", env={})


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("max_retries: [1]\n", "max_retries", "expected a whole number, got [1]"),
        ("backoff_max: {}\n", "backoff_max", "expected a number of seconds"),
        ("max_retries: " + "9" * 400 + "\n", "max_retries", "at most"),
        ("heartbeat_ttl: " + "9" * 400 + "\n", "heartbeat_ttl", "out of range"),
        ("heartbeat_ttl: .nan\n", "heartbeat_ttl", "out of range"),
        ("read_only: maybe\n", "read_only", "expected a boolean"),
        ("read_only: [yes]\n", "read_only", "expected a boolean"),
        ("prefix: {a: 1}\n", "prefix", "expected a string"),
        ("fsync: sometimes\n", "fsync", "one of everysec, always, got 'sometimes'"),
        ("max_retries: !!int abc\n", "line 1, column 14", "!!int cannot read 'abc'"),
        ("a:\n" + "- " * 200 + "x\n", "line 2", "nested more than"),
    ],
)  # fmt: skip
def test_bad_values_name_the_file_and_field(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Settings.load(path, env={})
    assert info.value.source == str(path)
    assert info.value.field.startswith(field)
    assert reason in info.value.reason


def test_a_non_utf8_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_bytes(b"prefix: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"rwq.yaml: not UTF-8 text"):
        Settings.load(path, env={})


def test_durations_take_units(tmp_path: Path) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text("heartbeat_ttl: 30s\nreaper_interval: 500ms\n")
    settings = Settings.load(path, env={})
    assert (settings.heartbeat_ttl, settings.reaper_interval) == (30.0, 0.5)


def test_results_are_kept_an_hour_up_to_64_kib_unless_set(tmp_path: Path) -> None:
    assert (Settings().result_ttl, Settings().result_max_bytes) == (3600.0, 65536)
    path = tmp_path / "rwq.yaml"
    path.write_text("result_ttl: 10m\nresult_max_bytes: 1000\n")
    settings = Settings.load(path, env={"RWQ_RESULT_TTL": "0"})
    assert (settings.result_ttl, settings.result_max_bytes) == (0.0, 1000)


_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.mark.fuzz
@given(st.sampled_from(sorted(f.name for f in fields(Settings))), _yaml_values)
def test_any_value_of_any_setting_is_taken_or_named(name: str, value: object) -> None:
    path = Path(tempfile.mkdtemp()) / "rwq.yaml"
    path.write_text(yaml.safe_dump({name: value}), encoding="utf-8")
    try:
        Settings.load(path, env={})
    except ConfigError as error:
        assert error.source == str(path) and error.field == name, error


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("heartbeat_ttl: -5\n", "heartbeat_ttl", "must not be negative"),
        ("reaper_interval: 0\n", "reaper_interval", "must be 0.01s to 3600s, got 0"),
        ("max_retries: 5000\n", "max_retries", "must be 0 retries to 1000 retries"),
        ("events_maxlen: 1\n", "events_maxlen", "must be 100 events"),
        ("heartbeat_interval: 5\nheartbeat_ttl: 6\n", "heartbeat_ttl", "at least twice"),
        ("backoff_base: 60\nbackoff_max: 1\n", "backoff_max", "at least backoff_base"),
        ("prefix: 'a b'\n", "prefix", "A-Z"),
        ("shutdown_timeout: 2d\n", "shutdown_timeout", "must be 0s to 86400s"),
        ("result_ttl: 31d\n", "result_ttl", "must be 0s to"),
        ("result_max_bytes: -1\n", "result_max_bytes", "must be 0 bytes to"),
    ],
)  # fmt: skip
def test_settings_out_of_range_name_the_file_and_field(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    """heartbeat_ttl: -5 or reaper_interval: 0 were taken and workers died on a Redis error;
    a TTL under the heartbeat interval let the reaper take jobs from live workers."""
    path = tmp_path / "rwq.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Settings.load(path, env={})
    assert (info.value.source, info.value.field) == (str(path), field)
    assert reason in info.value.reason


def test_a_rule_across_settings_names_where_the_value_came_from() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env={"RWQ_HEARTBEAT_TTL": "1"})
    assert (info.value.source, info.value.field) == ("$RWQ_HEARTBEAT_TTL", "heartbeat_ttl")
    with pytest.raises(ConfigError, match=r"^flags: heartbeat_ttl: must be at least twice"):
        Settings.load(env={}, heartbeat_ttl=1.5)
    with pytest.raises(ConfigError, match=r"^settings: reaper_interval"):
        Settings(reaper_interval=0)


def test_plugin_registries_are_a_list_in_the_file_and_commas_in_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text("plugin_registries: [https://plugins.example.com/rwq, /srv/rwq]\n")
    loaded = Settings.load(path, env={})
    assert loaded.plugin_registries == ("https://plugins.example.com/rwq", "/srv/rwq")
    from_env = Settings.load(env={"RWQ_PLUGIN_REGISTRIES": "http://127.0.0.1:8000/, file:///r"})
    assert from_env.plugin_registries == ("http://127.0.0.1:8000/", "file:///r")
    assert Settings.load(env={"RWQ_PLUGIN_REGISTRIES": ""}).plugin_registries == ()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("[ftp://example.com/r]", "a registry URL is http://, https:// or file://"),
        ("[https:///r]", "the URL names no host"),
        ("[3]", "a registry is an http(s):// URL or a directory"),
        ("{a: 1}", "expected a list of registry URLs or directories"),
    ],
)
def test_a_bad_plugin_registry_names_the_setting(tmp_path: Path, value: str, reason: str) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text(f"plugin_registries: {value}\n")
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, env={})
    assert caught.value.field == "plugin_registries" and reason in caught.value.reason


def test_queue_timeouts_are_a_mapping_in_the_file_and_pairs_in_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text("queue_timeouts: {mail: 30s, video: 10m, tiny: 0.00001}\n")
    loaded = Settings.load(path, env={})
    assert loaded.queue_timeout_map == {"mail": 30.0, "video": 600.0, "tiny": 0.00001}
    assert Settings(queue_timeouts=loaded.queue_timeouts) == loaded  # its text reads back
    from_env = Settings.load(env={"RWQ_QUEUE_TIMEOUTS": "mail=1.5, video=5m"})
    assert from_env.queue_timeout_map == {"mail": 1.5, "video": 300.0}
    assert Settings.load(env={"RWQ_QUEUE_TIMEOUTS": ""}).queue_timeout_map == {}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{mail: 0}", "queue mail: must be more than 0 seconds"),
        ("{mail: -1}", "queue mail: must not be negative"),
        ("{mail: soon}", "queue mail: expected a duration"),
        ("{mail: 31d}", "queue mail: at most 30d"),
        ("{mail: [1]}", "queue mail: expected a duration"),
        ("mail", "expected queue=duration pairs"),
        ("[mail]", "expected a mapping of queue to duration"),
        ("'a=1,a=2'", "queue 'a' is named twice"),
    ],
)
def test_a_bad_queue_timeout_names_the_setting_and_queue(
    tmp_path: Path, value: str, reason: str
) -> None:
    path = tmp_path / "rwq.yaml"
    path.write_text(f"queue_timeouts: {value}\n")
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, env={})
    assert caught.value.source == str(path) and caught.value.field == "queue_timeouts"
    assert reason in caught.value.reason
