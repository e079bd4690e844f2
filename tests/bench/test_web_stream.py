"""The live stream's half of ``rwq bench web`` run small: ``rwq web`` with two bench plugins
changing, three connections reading its stream, and the figures it reports (their structure,
and that panels and statistics arrived with their lag; no timing asserts)."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from rwq.bench.web_stream import _behind, run_stream_bench
from rwq.cli.app import app
from rwq.config import Settings
from rwq.errors import RwqError


def test_three_connections_get_the_panels_of_two_plugins(
    settings: Settings, redis_client: redis.Redis
) -> None:
    figures = run_stream_bench(settings, connections=3, panels=2, rate=5, seconds=2)

    assert (figures["connections"], figures["panels"], figures["rate_per_panel"]) == (3, 2, 5)
    assert figures["server"] == "configured"
    assert figures["window_s"] > 0
    assert figures["events_published_per_s"] > 0
    assert figures["frames_made_per_s"] > 0  # the plugins' panels changed on the events
    assert figures["panel_events_per_s"] > 0
    assert set(figures["panel_events_per_connection_per_s"]) == {"min", "median", "max"}
    assert figures["panel_events_per_connection_per_s"]["min"] > 0  # every connection got some
    for key in ("panel_lag_ms", "event_to_browser_ms", "stats_lag_ms"):
        lag = figures[key]
        assert set(lag) == {"count", "p50", "p99", "max"}
        assert lag["count"] > 0, key
        assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"]
    assert figures["worst_connection_behind_ms"] >= figures["worst_connection_lag_ms"] >= 0
    assert figures["frames_skipped"] >= 0
    assert figures["kb_per_connection_per_s"]["min"] > 0
    assert figures["server_cores"] > 0
    assert figures["plugin_processes"] >= 2  # the sandboxes (and their zygote) under the server
    assert figures["plugin_processes_cores"] >= 0 and figures["client_cores"] > 0
    assert set(figures["targets"]) == {"server_under_one_core", "no_connection_over_1s_behind"}
    # the run leaves nothing on the server it was given
    assert not list(redis_client.scan_iter(match="rwqbench*"))


def test_a_stream_is_behind_from_the_first_frame_it_missed() -> None:
    made = {"p": {1: 10.0, 2: 10.2, 3: 10.4}}
    # frame 2 skipped: behind from its making (10.2) until frame 3 arrived (10.5)
    assert _behind([("p", 1, 10.0, 10.01, 1), ("p", 3, 10.4, 10.5, 3)], made, 12.0) == (
        pytest.approx(0.3),
        1,
    )
    # frame 3 never arrived: behind until the stream stopped reading
    assert _behind([("p", 1, 10.0, 10.01, 1), ("p", 2, 10.2, 10.25, 2)], made, 12.0) == (
        pytest.approx(1.6),
        1,
    )


def test_the_command_prints_the_stream_part_as_json(settings: Settings) -> None:
    result = CliRunner().invoke(
        app,
        ["--redis-url", str(settings.redis_url), "bench", "web", "--only", "stream",
         "--connections", "2", "--panels", "1", "--seconds", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"stream"}


def test_bad_arguments_are_named(settings: Settings) -> None:
    with pytest.raises(RwqError, match="--connections"):
        run_stream_bench(settings, connections=0)
