"""``rwq bench tui`` run small: the TUI in a pseudo-terminal (with its plugin host process) and
three panels changing on events added to Redis, and the figures it reports (their structure and
that the panels were updated; no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from rwq.bench.tui import grid_of, run_tui_bench, write_plugins
from rwq.cli.app import app
from rwq.config import Settings
from rwq.errors import RwqError


def test_three_panels_are_updated_in_a_real_terminal(
    settings: Settings, redis_client: redis.Redis
) -> None:
    figures = run_tui_bench(settings, panels=3, rate=20, seconds=2)

    assert figures["panels"] == 3 and figures["rate_per_panel"] == 20
    assert figures["window_s"] >= 2
    assert figures["events_published_per_s"] > 0
    assert figures["events_delivered_per_panel_per_s"] > 0  # through Redis and the host's feed
    assert figures["ui_cpu_pct"] > 0 and figures["plugin_host_cpu_pct"] > 0
    assert figures["tui_cpu_pct"] == pytest.approx(
        figures["ui_cpu_pct"] + figures["plugin_host_cpu_pct"], abs=0.2
    )
    assert figures["sandboxes_cpu_pct"] >= 0
    assert "MainThread" in figures["ui_cpu_pct_by_thread"]
    for key in ("frames_shown_per_panel_per_s", "paints_per_panel_per_s"):
        assert set(figures[key]) == {"min", "median", "max"}
        assert figures[key]["min"] > 0, key  # every panel was shown and painted again
    for key in ("render_ms", "render_view_ms", "paint_ms"):
        assert set(figures[key]) == {"count", "p50", "p99", "max"}
        assert figures[key]["count"] > 0
    assert set(figures["targets"]) == {
        "ui_cpu_under_50_pct", "tui_cpu_under_50_pct", "render_p99_under_2_ms"
    }  # fmt: skip
    assert figures["server"] == "configured"
    assert figures["terminal"]["term"] == "xterm-256color"
    assert figures["terminal"]["bytes_written_per_s"] > 0
    # the run leaves nothing on the server it was given
    assert not list(redis_client.scan_iter(match="rwqbench*"))


def test_the_command_prints_json(settings: Settings, redis_client: redis.Redis) -> None:
    result = CliRunner().invoke(
        app,
        ["--redis-url", str(settings.redis_url), "bench", "tui", "--panels", "2",
         "--seconds", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["panels"] == 2


def test_bad_arguments_are_named(settings: Settings) -> None:
    with pytest.raises(RwqError, match="--rate"):
        run_tui_bench(settings, panels=1, rate=0)
    result = CliRunner().invoke(app, ["bench", "tui", "--panels", "0"])
    assert result.exit_code != 0 and "--panels" in result.output


def test_every_panel_fits_the_terminal() -> None:
    for panels in (1, 3, 20, 50):
        columns, rows, width, height = grid_of(panels)
        assert columns * rows >= panels and width >= 40 and height > rows * 18


def test_the_plugins_are_written_with_their_own_queue(tmp_path: Path) -> None:
    root = tmp_path
    names = write_plugins(root, 2)
    assert names == ["bench-panel-00", "bench-panel-01"]
    manifest = (root / names[1] / "manifest.yaml").read_text(encoding="utf-8")
    assert 'queues: ["bench.bench-panel-01"]' in manifest
