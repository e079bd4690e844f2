"""The tenant-sla-monitor sample plugin (C, src/rwq/samples/tenant-sla-monitor): through
``rwq plugin check`` on fixture events and on the demo workload's events, rebuilt from source,
and beside alert-manager in one real plugin manager, where its breaches become alerts there."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from manager_host import Host
from wasm_samples import (
    ALERTS,
    FIXTURES,
    GRANTS,
    PLUGINS,
    ROOT,
    SLA,
    T0,
    build,
    find,
    health,
    install,
    job_event,
    one,
    render,
    table_rows,
    validated,
    wait_for,
    wasm_manager,
    write_jsonl,
)

from rwq.config import Settings
from rwq.host.check import CheckReport, check_plugin, read_events
from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.package.user_config import PluginConfigError
from rwq.queue.events import Event

EVENTS = FIXTURES / "tenant-sla-monitor.jsonl"
SEQ = itertools.count()
TIMES = "\N{MULTIPLICATION SIGN}"  # alert-manager: "CRIT <times>3", raised 3 times


def upper_edge(ms: float) -> float:
    """What the plugin reports for a run time: the upper edge of its histogram bin (1 ms
    wide to 10 ms, then ~10% wide)."""
    edge = 1.0
    while edge < ms:
        edge = max(math.floor(edge * 1.1 + 0.5), edge + 1)
    return edge


def check(
    settings: Settings,
    client: redis.Redis,
    events: Path,
    bundle: Path = PLUGINS / SLA,
    grants: tuple[str, ...] = GRANTS[SLA],
    **kw: Any,
) -> CheckReport:
    report = check_plugin(
        settings,
        bundle,
        grants=grants,
        events=read_events(events),
        companions=[PLUGINS / ALERTS],  # its required dependency
        client=client,
        **kw,
    )
    assert report.status == "ok", report.to_dict()
    assert report.faults == [] and report.errors == []
    assert report.render is not None
    validated(report.render)
    return report


def calls(report: CheckReport, function: str) -> list[dict[str, Any]]:
    return [a for a in report.audit if a["operation"].endswith(f":{function}")]


def test_the_fixture_renders_worst_first_with_exact_figures(
    settings: Settings, redis_client: redis.Redis
) -> None:
    report = check(settings, redis_client, EVENTS)
    elements = report.render
    assert [b["text"] for b in find(elements, "badge")] == [
        "1 breach", "1 at risk", "1 ok",
    ]  # fmt: skip
    assert [b["level"] for b in find(elements, "badge")] == ["error", "warning", "ok"]
    rows = table_rows(elements)
    # worst first: breach, at risk, ok, then too few runs (by name)
    assert list(rows) == ["initech", "globex", "acme", "hooli", "umbrella"]
    assert rows["initech"] == {
        "tenant": "initech", "status": "BREACH", "success": "66.7%",
        "p50 ms": upper_edge(880), "p95 ms": upper_edge(1160), "jobs/s": 0.7,
        "failed": 20, "dead": 2, "pending": None, "_style": "bold red",
    }  # fmt: skip
    assert rows["globex"] == {
        "tenant": "globex", "status": "at risk", "success": "96.0%",
        "p50 ms": upper_edge(280), "p95 ms": upper_edge(445), "jobs/s": 0.8,
        "failed": 2, "dead": 0, "pending": None, "_style": "yellow",
    }  # fmt: skip
    # acme's run from 400 s before the others is outside the 5 minute window
    assert rows["acme"] == {
        "tenant": "acme", "status": "ok", "success": "95.0%",
        "p50 ms": upper_edge(39), "p95 ms": upper_edge(57), "jobs/s": 1.3,
        "failed": 4, "dead": 0, "pending": 7, "_style": None,
    }  # fmt: skip
    assert rows["hooli"]["status"] == "no data"  # 5 runs < min_samples; tenant from its queue
    assert rows["umbrella"] == {
        "tenant": "umbrella", "status": "no data", "success": "-", "p50 ms": None,
        "p95 ms": None, "jobs/s": 0.0, "failed": 0, "dead": 0, "pending": 12, "_style": "dim",
    }  # fmt: skip
    assert "2 alerts sent" in find(elements, "text")[-1]["text"]

    # one alert per breached kind of initech, each after a list_dead of its queue
    assert [a["allowed"] for a in calls(report, "send_alert")] == [True, True]
    assert [a["resource"] for a in calls(report, "list_dead")] == ["tenant.initech"] * 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_demo_workload_breaches_initech_only(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, seed: int
) -> None:
    """Two minutes of ``rwq demo`` at its default 50 jobs/s, run through the demo's own
    handler: with the default targets initech breaches both, every other tenant is ok and
    none of them ever alerted."""
    from wasm_samples import demo_events

    events = write_jsonl(tmp_path / "demo.jsonl", demo_events(120, 50.0, seed))
    report = check(settings, redis_client, events)
    rows = table_rows(report.render)
    assert {t: r["status"] for t, r in rows.items()} == {
        "initech": "BREACH", "umbrella": "ok", "globex": "ok", "acme": "ok", "hooli": "ok",
    }  # fmt: skip
    assert next(iter(rows)) == "initech"
    assert float(rows["initech"]["success"].rstrip("%")) < 85
    assert rows["initech"]["p95 ms"] > 500
    # both kinds of initech alerted, then again every 30 s of event time while they last
    sent = len(calls(report, "send_alert"))
    assert 2 * 3 <= sent <= 2 * 5
    assert [a["resource"] for a in calls(report, "list_dead")] == ["tenant.initech"] * sent


def test_without_admin_alerts_send_it_says_so_and_asks_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    report = check(settings, redis_client, EVENTS, grants=("events.subscribe",))
    assert report.permissions["denied"] == ["admin.alerts.send", "admin.queue.peek"]
    assert "alerts NOT permitted" in find(report.render, "text")[-1]["text"]
    assert table_rows(report.render)["initech"]["status"] == "BREACH"
    # denied once, not again for the other kind or on every batch
    assert [a["allowed"] for a in calls(report, "send_alert")] == [False]
    assert [a["allowed"] for a in calls(report, "list_dead")] == [False]


def test_a_fresh_build_from_source_renders_the_same(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The committed main.wasm is what src/*.c build to (in behaviour)."""
    fresh = build(SLA, tmp_path / SLA)
    committed = check(settings, redis_client, EVENTS)
    rebuilt = check(settings, redis_client, EVENTS, bundle=fresh)
    assert rebuilt.render == committed.render
    ops = [(a["operation"], a["resource"], a["allowed"]) for a in committed.audit]
    assert [(a["operation"], a["resource"], a["allowed"]) for a in rebuilt.audit] == ops


def test_the_tenant_cap_keeps_memory_bounded(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """70 tenants at once: 64 are tracked, the rest counted; 7 minutes later the idle slots
    are reused by new tenants."""
    burst = [job_event("job.completed", f"t{i:02d}", T0 + i, 10) for i in range(70)]
    later = [job_event("job.completed", "late", T0 + 420_000, 10)]
    events = write_jsonl(tmp_path / "many.jsonl", burst)
    report = check(settings, redis_client, events, batch_size=70)
    rows = table_rows(report.render)
    assert len(rows) == 64 and "t63" in rows and "t64" not in rows
    assert "tenant cap reached" in find(report.render, "text")[-1]["text"]

    write_jsonl(events, [*burst, *later])
    rows = table_rows(check(settings, redis_client, events, batch_size=70).render)
    assert len(rows) == 64 and "late" in rows


# -- in a real manager, beside alert-manager --------------------------------------------------


def publish(manager: PluginManager, events: list[dict[str, Any]], handled: int) -> None:
    """Publish events and wait until the SLA monitor has handled ``handled`` in all."""
    manager.bus.publish_many(
        Event(
            type=e["type"], ts=e["ts"], source="queue", queue=e["queue"], data=e["data"],
            id=f"t:{next(SEQ)}",
        )
        for e in events
    )  # fmt: skip
    wait_for(lambda: health(manager, SLA).get("events", 0) >= handled, f"{handled} events")


def runs(ts0: int, n: int, ms: float, fail_every: int = 0, span_ms: int = 30_000) -> list[dict]:
    """``n`` initech runs of ``ms`` evenly over ``span_ms`` from ``ts0``; every
    ``fail_every``-th one failed."""
    out = []
    for i in range(n):
        failed = fail_every and i % fail_every == 0
        kind = "job.failed" if failed else "job.completed"
        extra = {"error": "TimeoutError: warehouse query timed out"} if failed else {}
        out.append(
            job_event(kind, "initech", ts0 + i * span_ms // n, ms, job_id=f"i{ts0}-{i}", **extra)
        )
    return out


def alert_lines(manager: PluginManager) -> list[str]:
    items: list[str] = one(render(manager, ALERTS), "list", id="alerts")["items"]
    return items


def test_a_breach_becomes_an_alert_in_alert_manager_once_until_it_recovers(
    host: Host, tmp_path: Path
) -> None:
    install(host, SLA, ALERTS)
    notes: list[tuple[str, str, str]] = []
    manager = wasm_manager(host, tmp_path, on_notify=lambda *n: notes.append(n))
    assert manager.state(ALERTS) is PluginState.ACTIVE
    assert manager.state(SLA) is PluginState.ACTIVE, manager.reason(SLA)

    fixture = [e.to_dict() for e in read_events(EVENTS)]
    publish(manager, fixture, len(fixture))
    wait_for(lambda: health(manager, ALERTS).get("active") == 2, "two alerts")
    lines = alert_lines(manager)
    assert len(lines) == 2
    assert any("SLA breach: initech p95 1170 ms > 500 ms" in line for line in lines)
    assert any("SLA breach: initech success rate 66.7% < 85.0%" in line for line in lines)
    assert all(
        line.startswith(f"CRIT {TIMES}1") and "(tenant-sla-monitor," in line for line in lines
    )
    assert [(p, level) for p, _, level in notes] == [(ALERTS, "error")] * 2
    sla_panel = render(manager, SLA)
    assert table_rows(sla_panel)["initech"]["status"] == "BREACH"
    assert one(sla_panel, "badge", text="1 breach")["level"] == "error"

    # the operator acknowledges the p95 alert
    p95 = next(i for i, line in enumerate(lines) if "p95" in line)
    assert manager.on_input(ALERTS, {"kind": "select", "id": "alerts", "index": p95, "value": ""})
    assert manager.on_input(ALERTS, {"kind": "key", "key": "a"})
    assert one(render(manager, ALERTS), "badge", text="1 acknowledged")

    # more of the same breach, 61 s on: the same two alerts again, kept current (counted, last
    # seen moved) and the acknowledged one stays acknowledged
    handled = len(fixture)
    more = runs(T0 + 61_000, 60, 1500, fail_every=2)
    handled += len(more)
    publish(manager, more, handled)
    assert health(manager, SLA)["alerts_sent"] == 4
    wait_for(lambda: all(f"{TIMES}2" in line for line in alert_lines(manager)), "the repeats")
    assert one(render(manager, ALERTS), "badge", text="1 acknowledged")

    # recovery: 100 s of fast, clean runs in three batches (the 5 min window moves past the
    # bad runs; re-armed after a minute of ok)
    for start in (400_000, 430_000, 470_000):
        batch = runs(T0 + start, 60, 50)
        handled += len(batch)
        publish(manager, batch, handled)
    assert table_rows(render(manager, SLA))["initech"]["status"] == "ok"

    # and a new breach of p95 only: alerted again, with the same key
    slow = runs(T0 + 520_000, 60, 2000, fail_every=3)
    handled += len(slow)
    publish(manager, slow, handled)
    assert health(manager, SLA)["alerts_sent"] == 5
    wait_for(
        lambda: any(f"{TIMES}3" in line for line in alert_lines(manager)), "the re-raised alert"
    )
    lines = alert_lines(manager)
    # the acknowledged p95 alert is active again (a new incident), raised three times
    assert lines[0].startswith(f"CRIT {TIMES}3  SLA breach: initech p95"), lines
    assert not any(line.startswith("ack") for line in lines)
    assert one(render(manager, ALERTS), "badge", text="0 acknowledged")
    assert len(notes) == 3  # re-opened critical alerts notify again


def test_a_hot_reload_keeps_which_breaches_were_alerted(host: Host, tmp_path: Path) -> None:
    install(host, SLA, ALERTS)
    manager = wasm_manager(host, tmp_path)
    fixture = [e.to_dict() for e in read_events(EVENTS)]
    publish(manager, fixture, len(fixture))
    assert health(manager, SLA)["alerts_sent"] == 2

    result = manager.reload(SLA)
    assert result.ok and result.state_handed_over, result
    more = runs(T0 + 61_000, 60, 1500, fail_every=2)
    publish(manager, more, len(more))
    assert table_rows(render(manager, SLA))["initech"]["status"] == "BREACH"
    # the new instance knew both breaches were alerted: it repeats them (same keys, counted
    # by alert-manager) rather than raising them as new
    assert health(manager, SLA)["alerts_sent"] == 4
    wait_for(lambda: health(manager, ALERTS).get("active") == 2, "two alerts")
    wait_for(lambda: all(f"{TIMES}2" in line for line in alert_lines(manager)), "the repeats")


def test_keys_switch_the_window_and_open_a_tenants_details(host: Host, tmp_path: Path) -> None:
    install(host, SLA, ALERTS)
    manager = wasm_manager(host, tmp_path)
    fixture = [e.to_dict() for e in read_events(EVENTS)]
    publish(manager, fixture, len(fixture))
    assert one(render(manager, SLA), "table")["title"] == "Tenants, last 5m (worst first)"

    assert manager.on_input(SLA, {"kind": "key", "key": "w"})
    panel = render(manager, SLA)
    assert one(panel, "table")["title"] == "Tenants, last 1m (worst first)"
    assert table_rows(panel)["acme"]["status"] == "ok"  # the status stays the 5 min SLA's

    select = {"kind": "select", "id": "tenants", "index": 0, "value": "initech"}
    assert manager.on_input(SLA, select)
    panel = render(manager, SLA)
    details = one(panel, "kv")
    assert details["title"] == "initech: BREACH"
    items = dict(details["items"])
    assert items["targets"] == "success >= 85.0%, p95 <= 500 ms"
    assert items["errors"] == "20 failed, 2 dead-lettered (5m)"
    assert items["last error"].startswith("TimeoutError: warehouse query")
    assert items["alerts"] == "2 sent; re-armed once it recovers"
    spark = one(panel, "sparkline")
    assert len(spark["values"]) == 30 and max(spark["values"]) == upper_edge(1180)
    assert manager.on_input(SLA, select)  # again: closed
    assert find(render(manager, SLA), "kv") == []

    narrow = one(render(manager, SLA, width=50), "table")
    assert narrow["columns"] == ["tenant", "status", "success", "p95 ms", "jobs/s"]
    assert not manager.on_input(SLA, {"kind": "key", "key": "q"})


def test_targets_come_from_the_config_and_bad_ones_are_refused(host: Host, tmp_path: Path) -> None:
    install(host, SLA, ALERTS)
    manager = wasm_manager(host, tmp_path)
    fixture = [e.to_dict() for e in read_events(EVENTS)]
    publish(manager, fixture, len(fixture))

    manager.set_config(SLA, {"tenants": {"globex": {"max_p95_ms": 1000}, "acme": {
        "max_p95_ms": 50}}, "min_samples": 5})  # fmt: skip
    rows = table_rows(render(manager, SLA))
    assert rows["globex"]["status"] == "ok"  # 450 ms is far under its 1 s
    assert rows["acme"]["status"] == "BREACH"  # 61 ms over its 50
    assert rows["hooli"]["status"] == "ok"  # 5 runs are enough now
    config = manager.get_config(SLA)
    assert config["tenants"] == {"globex": {"max_p95_ms": 1000}, "acme": {"max_p95_ms": 50}}
    assert config["max_p95_ms"] == 500 and config["sla_window"] == "5m"

    for bad, field in [
        ({"tenants": {"acme": {"max_p95_ms": -1}}}, "config.tenants.acme.max_p95_ms"),
        ({"tenants": {"acme": {"max_p59_ms": 10}}}, "config.tenants.acme.max_p59_ms"),
        ({"min_success_pct": 101}, "config.min_success_pct"),
        ({"sla_window": "10m"}, "config.sla_window"),
        ({"min_samples": 0}, "config.min_samples"),
        ({"at_risk": 2}, "config.at_risk"),
        ({"tenants": []}, "config.tenants"),
        ({"max_p95": 100}, "config.max_p95"),
    ]:
        with pytest.raises(PluginConfigError, match=field.replace(".", r"\.")):
            manager.set_config(SLA, bad)
    assert table_rows(render(manager, SLA))["acme"]["status"] == "BREACH"  # unchanged


def test_long_non_ascii_names_and_errors_are_cut_on_character_boundaries(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A tenant name over the 128 bytes kept and errors over the 199 kept, in 2-byte
    characters: cut mid-character, the panel and the alert would not be UTF-8 (and the host
    would refuse them)."""
    name, error = "\N{LATIN SMALL LETTER U WITH DIAERESIS}" * 100, "\N{GRINNING FACE}é" * 100
    events = [
        job_event("job.failed", name, T0 + i * 100, 700, error=error, job_id=f"u{i}")
        for i in range(60)
    ]
    report = check(settings, redis_client, write_jsonl(tmp_path / "intl.jsonl", events))
    rows = table_rows(report.render)
    kept = name[:64]  # 128 bytes
    assert list(rows) == [kept] and rows[kept]["status"] == "BREACH"
    assert [a["allowed"] for a in calls(report, "send_alert")] == [True, True]


def test_rwq_plugin_check_with_its_dependency(valkey_url: str, tmp_path: Path) -> None:
    """The README's command, through the CLI: --with loads alert-manager beside it; without
    it the monitor cannot start (exit 2, the dependency named)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env["RWQ_STATE_DIR"] = str(tmp_path / "state")
    command = [
        sys.executable, "-m", "rwq", "--redis-url", valkey_url, "plugin", "check",
        str(PLUGINS / SLA), "--grant", ",".join(GRANTS[SLA]), "--events", str(EVENTS),
    ]  # fmt: skip
    run = subprocess.run(
        [*command, "--with", str(PLUGINS / ALERTS), "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["plugin"]["name"] == SLA and list(report["hooks"]) == [
        "initialize", "on_event", "render",
    ]  # fmt: skip  # alert-manager's hooks are not in the report
    assert table_rows(report["render"])["initech"]["status"] == "BREACH"

    alone = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert alone.returncode == 2
    assert "requires alert-manager" in alone.stderr
    assert "load its dependencies beside it with --with PATH: alert-manager" in alone.stderr


@pytest.mark.parametrize(("ok_for", "alerts"), [("10 s", 4), ("64 s", 4)])
def test_a_breach_alerts_again_only_after_a_minute_of_ok(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, ok_for: str, alerts: int
) -> None:
    """Breached, then ok (the 5 min window past the bad runs), then breached again: a new
    breach only if it stayed ok for a minute (a tenant hovering at its target does not raise
    one on every crossing); else the same breach goes on and its alerts are repeated (more
    than 30 s later). Either way the same keys, once each per phase. One batch of 60 events
    a phase."""
    bad = runs(T0, 60, 1500, fail_every=2)
    if ok_for == "10 s":
        recovered = runs(T0 + 400_000, 60, 50)
        again = runs(T0 + 440_000, 60, 1500, fail_every=2)
    else:
        recovered = [*runs(T0 + 400_000, 60, 50), *runs(T0 + 430_000, 60, 50, span_ms=65_000)]
        again = runs(T0 + 500_000, 60, 1500, fail_every=2)
    events = write_jsonl(tmp_path / "flap.jsonl", [*bad, *recovered, *again])
    report = check(settings, redis_client, events, batch_size=60)
    assert table_rows(report.render)["initech"]["status"] == "BREACH"
    assert [a["allowed"] for a in calls(report, "send_alert")] == [True] * alerts
    assert len({a["resource"] for a in calls(report, "send_alert")}) <= 2


def test_the_manifest_is_the_design_example_plus_the_documented_additions() -> None:
    design = yaml.safe_load(
        (ROOT / "tests/plugins/fixtures/design-example/manifest.yaml").read_text("utf-8")
    )
    ours = yaml.safe_load((PLUGINS / SLA / "manifest.yaml").read_text("utf-8"))
    added = [
        {"type": "job.failed", "queues": ["tenant.*"]},
        {"type": "job.dead_lettered", "queues": ["tenant.*"]},
    ]
    assert ours["events"] == [*design["events"], *added]
    assert set(ours["config"]) == {
        "min_success_pct", "max_p95_ms", "tenants", "sla_window", "min_samples", "at_risk",
        "alerts",
    }  # fmt: skip
    assert {k: v for k, v in ours.items() if k not in ("events", "config")} == {
        k: v for k, v in design.items() if k != "events"
    }
