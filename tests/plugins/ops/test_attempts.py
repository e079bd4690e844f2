"""The reload history: the latest attempts per plugin, a repeated failure kept once, every
reload kept."""

from __future__ import annotations

from rwq.plugins.ops.attempts import ReloadHistory


def test_the_same_failed_attempt_twice_in_a_row_is_kept_once() -> None:
    history = ReloadHistory()
    history.record("p", "1.1.0", "invalid", "bad manifest")
    history.record("p", "1.1.0", "invalid", "bad manifest")
    history.record("p", "1.1.0", "reloaded")
    history.record("p", "1.1.0", "invalid", "bad manifest")
    outcomes = [(a.outcome, a.reason) for a in history.of("p")]
    assert outcomes == [("invalid", "bad manifest"), ("reloaded", ""), ("invalid", "bad manifest")]
    assert history.of("q") == []


def test_only_the_latest_attempts_are_kept() -> None:
    history = ReloadHistory(size=3)
    for minor in range(5):
        history.record("p", f"1.{minor}.0", "reloaded")
    assert [a.version for a in history.of("p")] == ["1.2.0", "1.3.0", "1.4.0"]


def test_two_reloads_of_one_version_are_two_reloads() -> None:
    """Two saves of a plugin under development keep its version: each swap is shown."""
    history = ReloadHistory()
    history.record("p", "0.1.0", "reloaded")
    history.record("p", "0.1.0", "reloaded")
    assert [a.outcome for a in history.of("p")] == ["reloaded", "reloaded"]
