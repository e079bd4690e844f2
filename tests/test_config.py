"""Settings: file, then environment, then flags; bad values name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    with pytest.raises(ConfigError, match="not valid YAML"):
        Settings.load(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        Settings.load(tmp_path / "nope.yaml", env={})
