"""The scale scenario of ``rwq bench plugins`` run tiny: three Starlark plugins on ``job.*``
under real queue traffic, its figures' shape and that the plugins saw the events (no timing
asserts)."""

from __future__ import annotations

import json

import redis
from typer.testing import CliRunner

from rwq.bench.scale import run_scale
from rwq.cli.app import app
from rwq.config import Settings


def test_three_plugins_count_the_job_events_of_a_real_queue(
    settings: Settings, redis_client: redis.Redis
) -> None:
    figures = run_scale(settings, plugins=3, events_per_s=300, seconds=1.5)

    assert figures["plugins"] == 3
    assert figures["events_published"] > 0
    assert figures["jobs"]["processed"] == figures["jobs"]["enqueued"] > 0
    delivered = figures["delivered_per_plugin"]
    assert set(delivered) == {"min", "mean", "max"}
    assert 0 < delivered["min"] <= figures["events_published"]
    counters = figures["host_counters"]
    # what the plugins counted themselves agrees with what the host handed them and dropped
    assert counters["handed_to_on_event"] == round(delivered["mean"] * 3)
    assert counters["unaccounted"] == 0 and counters["faults"] == 0
    assert 0 <= figures["dropped_pct"] <= 100
    for key in ("delivery_ms", "on_event_ms"):
        assert set(figures[key]) == {"n", "p50", "p99", "max"} and figures[key]["n"] > 0
    assert figures["host_cpu_pct"] > 0 and figures["sandbox_cpu_pct"] >= 0
    assert "rwq-stream-feed" in figures["host_cpu_pct_by_thread"]
    assert figures["duration_s"] > 0
    json.dumps(figures)
    assert not list(redis_client.scan_iter(match="rwq:*"))  # nothing left behind


def test_the_command_runs_the_scenario_alone(settings: Settings, redis_client: redis.Redis) -> None:
    result = CliRunner().invoke(
        app,
        ["--redis-url", str(settings.redis_url), "bench", "plugins", "--only-scale",
         "--scale", "2", "--scale-seconds", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert set(figures) == {"server", "scale"}
    assert figures["scale"]["plugins_2"]["plugins"] == 2
    assert figures["scale"]["plugins_2"]["delivered_per_plugin"]["min"] > 0
