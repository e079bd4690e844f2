"""The alert-manager sample plugin (AssemblyScript, src/rwq/samples/alert-manager): through ``rwq
plugin check`` on fixture alerts, rebuilt from source, and in a real plugin manager:
acknowledge, clear, re-raise, history kept in storage across restarts and reloads, bounded,
call_dependency, notifications."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import redis
from manager_host import Host
from wasm_samples import (
    ALERTS,
    FIXTURES,
    GRANTS,
    PLUGINS,
    T0,
    build,
    find,
    health,
    install,
    one,
    render,
    validated,
    wait_for,
    wasm_manager,
)

from rwq.config import Settings
from rwq.host.check import CheckReport, check_plugin, read_events
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.package.user_config import PluginConfigError
from rwq.queue.events import Event

EVENTS = FIXTURES / "alert-manager.jsonl"
TIMES = "\N{MULTIPLICATION SIGN}"  # "CRIT <times>3": raised three times
SEQ = itertools.count()

# The fixture's alerts as the list shows them: active first (critical, warning, info; each
# newest first). Times are the events' (T0 is 14:13:20 UTC).
FIXTURE_LINES = [
    f"CRIT {TIMES}3  SLA breach: initech p95 967 ms > 500 ms  (tenant-sla-monitor, 14:13:29 UTC)",
    f"CRIT {TIMES}1  SLA breach: initech success rate 66.7% < 85.0%  "
    "(tenant-sla-monitor, 14:13:27 UTC)",
    f"WARN {TIMES}1  initech p95 trending up  (capacity-planner, 14:13:28 UTC)",
    f"WARN {TIMES}1  Disk 91% full on /var/lib/valkey  (disk-watch, 14:13:21 UTC)",
    f"INFO {TIMES}2  Nightly export finished late  (nightly-report, 14:13:26 UTC)",
]


def check(
    settings: Settings,
    client: redis.Redis,
    bundle: Path = PLUGINS / ALERTS,
    grants: tuple[str, ...] = GRANTS[ALERTS],
) -> CheckReport:
    report = check_plugin(
        settings, bundle, grants=grants, events=read_events(EVENTS), batch_size=3, client=client
    )
    assert report.status == "ok", report.to_dict()
    assert report.faults == [] and report.errors == []
    assert report.render is not None
    validated(report.render)
    return report


def test_the_fixture_is_deduplicated_by_sender_and_key(
    settings: Settings, redis_client: redis.Redis
) -> None:
    report = check(settings, redis_client)
    elements = report.render
    assert [(b["text"], b["level"]) for b in find(elements, "badge")] == [
        ("5 active", "critical"),
        ("2 critical", "critical"),
        ("2 warning", "warning"),
        ("0 acknowledged", "muted"),
    ]
    alerts = one(elements, "list", id="alerts")
    assert alerts["items"] == FIXTURE_LINES
    assert alerts["selected"] == 0
    details = one(elements, "kv")
    assert details["title"] == "SLA breach: initech p95 967 ms > 500 ms"  # the latest title
    assert dict(details["items"]) == {
        "state": "active",
        "severity": "critical",
        "from": "tenant-sla-monitor",
        "key": "sla:initech:p95",
        "raised": "3 times",
        "first seen": "14:13:20 UTC",
        "last seen": "14:13:29 UTC",
    }
    assert one(elements, "text", text="Tenant initech over the last 5m: 180 runs, 52 failed.")
    assert [b["key"] for b in find(elements, "button")] == ["a", "A", "c"]

    ops = [a["operation"].split(":")[-1] for a in report.audit if a["allowed"]]
    assert ops.count("storage_set") == 8  # every change saved
    assert ops.count("show_notification") == 2  # new critical alerts only, not repeats


def test_a_fresh_build_from_source_renders_the_same(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The committed main.wasm is what src/main.ts builds to (in behaviour)."""
    fresh = build(ALERTS, tmp_path / ALERTS)
    committed = check(settings, redis_client)
    rebuilt = check(settings, redis_client, bundle=fresh)
    assert rebuilt.render == committed.render
    ops = [(a["operation"], a["allowed"]) for a in committed.audit]
    assert [(a["operation"], a["allowed"]) for a in rebuilt.audit] == ops


def test_without_storage_and_notifications_it_still_works_and_says_so(
    settings: Settings, redis_client: redis.Redis
) -> None:
    report = check(settings, redis_client, grants=("events.subscribe",))
    assert one(report.render, "list", id="alerts")["items"] == FIXTURE_LINES
    footer = find(report.render, "text")[-1]["text"]
    assert "history not saved (storage not granted)" in footer
    assert "notifications not granted" in footer
    calls = [a for a in report.audit if ":" in a["operation"]]  # host calls, not the review
    denied = [a["operation"].split(":")[-1] for a in calls if not a["allowed"]]
    # each asked once, then no more
    assert sorted(denied) == ["show_notification", "storage_list", "storage_set"]


# -- in a real manager ------------------------------------------------------------------------


def raised(manager: PluginManager, events: list[Event]) -> None:
    manager.bus.publish_many(events)


def alert(
    ts: float, frm: str, severity: str, title: str, key: str | None = None, message: str = "",
    *, repeat: bool = False,
) -> Event:  # fmt: skip
    data = {"from": frm, "severity": severity, "title": title, "message": message, "key": key,
            "repeat": repeat}  # fmt: skip
    return Event(
        type="alert.raised", ts=ts, source=f"plugin:{frm}", queue="", data=data,
        id=f"a:{next(SEQ)}",
    )  # fmt: skip


def fixture(manager: PluginManager) -> None:
    raised(manager, read_events(EVENTS))
    wait_for(lambda: health(manager, ALERTS).get("active") == 5, "the fixture's alerts")


def lines(manager: PluginManager) -> list[str]:
    items: list[str] = one(render(manager, ALERTS), "list", id="alerts")["items"]
    return items


def titles(manager: PluginManager) -> list[str]:
    return [line.removeprefix("ack  ").split("  ")[1] for line in lines(manager)]


def press(manager: PluginManager, key: str) -> bool:
    return manager.on_input(ALERTS, {"kind": "key", "key": key})


def select(manager: PluginManager, index: int) -> bool:
    return manager.on_input(ALERTS, {"kind": "select", "id": "alerts", "index": index, "value": ""})


@pytest.fixture
def alerts(host: Host, tmp_path: Path) -> PluginManager:
    install(host, ALERTS)
    return wasm_manager(host, tmp_path)


def test_acknowledge_clear_and_a_reraised_alert_is_active_again(
    alerts: PluginManager,
) -> None:
    fixture(alerts)
    assert press(alerts, "a")  # the selected one: the first
    assert lines(alerts) == [*FIXTURE_LINES[1:], "ack  " + FIXTURE_LINES[0]]
    panel = render(alerts, ALERTS)
    assert one(panel, "badge", text="1 acknowledged")
    assert one(panel, "list")["selected"] == 4  # the selection follows the alert
    assert dict(one(panel, "kv")["items"])["state"].startswith("acknowledged at ")
    assert not press(alerts, "a")  # already acknowledged

    assert select(alerts, 2)  # "Disk 91% full": by index, with the button
    assert alerts.on_input(ALERTS, {"kind": "button", "id": "ack"})
    assert press(alerts, "up") and press(alerts, "down")
    assert not press(alerts, "down")  # the last one
    assert health(alerts, ALERTS)["acknowledged"] == 2

    # repeated while it goes on: counted, kept current, still acknowledged
    raised(alerts, [alert(T0 + 60_000, "tenant-sla-monitor", "critical", "p95 still high",
                          "sla:initech:p95", repeat=True)])  # fmt: skip
    wait_for(lambda: any("p95 still high" in line for line in lines(alerts)), "the repeat")
    assert health(alerts, ALERTS)["acknowledged"] == 2
    # raised again as a new incident: the acknowledged alert is active again
    raised(alerts, [alert(T0 + 610_000, "tenant-sla-monitor", "critical", "p95 still high",
                          "sla:initech:p95")])  # fmt: skip
    wait_for(lambda: health(alerts, ALERTS)["acknowledged"] == 1, "the alert re-opened")
    assert lines(alerts)[0] == (
        f"CRIT {TIMES}5  p95 still high  (tenant-sla-monitor, 14:23:30 UTC)"
    )

    assert press(alerts, "c")  # clears the acknowledged disk alert
    assert titles(alerts) == [
        "p95 still high",
        "SLA breach: initech success rate 66.7% < 85.0%",
        "initech p95 trending up",
        "Nightly export finished late",
    ]
    assert not press(alerts, "c")  # nothing acknowledged left
    assert press(alerts, "A")  # all
    assert one(render(alerts, ALERTS), "badge", text="0 active")["level"] == "ok"
    assert press(alerts, "c")
    panel = render(alerts, ALERTS)
    assert find(panel, "list") == [] and one(panel, "text", text="No alerts.")


def test_the_history_survives_a_restart_and_a_hot_reload(host: Host, tmp_path: Path) -> None:
    install(host, ALERTS)
    first = wasm_manager(host, tmp_path)
    fixture(first)
    assert select(first, 3) and press(first, "a")
    before = lines(first)
    assert before[-1].startswith("ack  WARN")
    first.stop()

    second = wasm_manager(host, tmp_path)  # rwq restarted: same Redis, same state dir
    assert lines(second) == before
    assert health(second, ALERTS) == {
        "status": "ok", "active": 4, "acknowledged": 1, "persisted": True,
    }  # fmt: skip

    assert select(second, 1)
    result = second.reload(ALERTS)
    assert result.ok and result.state_handed_over, result
    assert lines(second) == before
    assert one(render(second, ALERTS), "list")["selected"] == 1  # the selection too
    # and it goes on counting where it was
    raised(second, [alert(T0 + 610_000, "disk-watch", "warning", "Disk 93% full",
                          "disk:/var/lib/valkey")])  # fmt: skip
    wait_for(lambda: health(second, ALERTS)["acknowledged"] == 0, "the disk alert re-opened")
    assert f"WARN {TIMES}2  Disk 93% full  (disk-watch, 14:23:30 UTC)" in lines(second)


def test_the_history_is_bounded_oldest_acknowledged_first(host: Host, tmp_path: Path) -> None:
    install(host, ALERTS)
    manager = wasm_manager(host, tmp_path)
    manager.set_config(ALERTS, {"max_history": 3})
    raised(manager, [alert(T0 + i * 1000, "p", "warning", f"alert {i}", f"k{i}")
                     for i in range(3)])  # fmt: skip
    wait_for(lambda: health(manager, ALERTS).get("active") == 3, "three alerts")
    assert select(manager, 2) and press(manager, "a")  # "alert 0", the oldest, acknowledged
    assert select(manager, 1) and press(manager, "a")  # "alert 1"
    raised(manager, [alert(T0 + 10_000, "p", "info", "alert 3", "k3")])
    wait_for(lambda: "alert 3" in " ".join(lines(manager)), "the fourth alert")
    # "alert 0" went: the oldest acknowledged
    assert titles(manager) == ["alert 2", "alert 3", "alert 1"]
    raised(manager, [alert(T0 + 11_000, "p", "info", "alert 4", "k4"),
                     alert(T0 + 12_000, "p", "info", "alert 5", "k5")])  # fmt: skip
    wait_for(lambda: "alert 5" in " ".join(lines(manager)), "the sixth alert")
    # no acknowledged one left to drop first: then the oldest
    assert titles(manager) == ["alert 5", "alert 4", "alert 3"]
    manager.stop()
    # the store holds the same three
    assert titles(wasm_manager(host, tmp_path)) == ["alert 5", "alert 4", "alert 3"]


def test_a_dependant_raises_through_call_dependency(alerts: PluginManager) -> None:
    chain = ("tenant-sla-monitor", ALERTS)  # the caller, then the callee
    args = {"severity": "critical", "title": "queue stuck", "message": "no progress", "key": "q"}
    assert alerts.call_plugin(chain, ALERTS, "raise", args) == {"count": 1, "state": "active"}
    assert alerts.call_plugin(chain, ALERTS, "raise", args) == {"count": 2, "state": "active"}
    assert alerts.call_plugin(chain, ALERTS, "counts", None) == {
        "active": 1, "critical": 1, "acknowledged": 0,
    }  # fmt: skip
    active = alerts.call_plugin(chain, ALERTS, "active", None)
    assert [(a["from"], a["key"], a["count"]) for a in active] == [("tenant-sla-monitor", "q", 2)]
    assert lines(alerts)[0].startswith(f"CRIT {TIMES}2  queue stuck  (tenant-sla-monitor, ")

    bad: list[tuple[str, Any, str]] = [
        ("raise", {"severity": "fatal", "title": "x"}, "severity must be info, warning or"),
        ("raise", {"severity": "info", "title": ""}, "title must be 1-200 characters"),
        ("raise", {"severity": "info", "title": "x", "key": "k" * 129}, "key must be at most"),
        ("resolve", None, "unknown function resolve (one of: raise, active, counts)"),
    ]
    for function, arguments, message in bad:
        result = alerts.call_plugin(chain, ALERTS, function, arguments)
        assert message in result["error"], result


def test_new_critical_alerts_notify(host: Host, tmp_path: Path) -> None:
    install(host, ALERTS)
    notes: list[tuple[str, str, str]] = []
    manager = wasm_manager(host, tmp_path, on_notify=lambda *n: notes.append(n))
    raised(manager, [
        alert(T0, "sla", "critical", "initech breach", "k1"),
        alert(T0 + 1, "sla", "critical", "initech breach", "k1"),  # a repeat: no
        alert(T0 + 2, "disk", "warning", "disk filling", "k2"),  # not critical: no
    ])  # fmt: skip
    wait_for(lambda: health(manager, ALERTS).get("active") == 2, "two alerts")
    assert notes == [(ALERTS, "Critical alert from sla: initech breach", "error")]

    manager.set_config(ALERTS, {"notify_critical": False})
    raised(manager, [alert(T0 + 3, "sla", "critical", "another", "k3")])
    wait_for(lambda: health(manager, ALERTS).get("active") == 3, "three alerts")
    assert len(notes) == 1
    assert manager.get_config(ALERTS) == {"max_history": 200, "notify_critical": False}


def test_bad_config_is_refused_naming_the_field(alerts: PluginManager) -> None:
    for bad, field in [
        ({"max_history": 0}, "config.max_history"),
        ({"max_history": 2.5}, "config.max_history"),
        ({"notify_critical": "yes"}, "config.notify_critical"),
        ({"max_histroy": 10}, "config.max_histroy"),
    ]:
        with pytest.raises(PluginConfigError, match=field):
            alerts.set_config(ALERTS, bad)
    assert alerts.get_config(ALERTS) == {"max_history": 200, "notify_critical": True}


def test_long_texts_are_cut_between_characters(alerts: PluginManager) -> None:
    """Titles, messages and list lines cut to their limits never split a surrogate pair
    (half of one is not UTF-8: the host would refuse the panel)."""
    face = "\N{GRINNING FACE}"  # two UTF-16 units
    title, message = "x" + face * 99, "x" + face * 2500  # cut at 2000: inside a pair
    raised(alerts, [alert(T0, "intl", "critical", title, "k", message)])
    wait_for(lambda: health(alerts, ALERTS).get("active") == 1, "the alert")
    panel = render(alerts, ALERTS)
    (line,) = one(panel, "list")["items"]
    assert line.startswith(f"CRIT {TIMES}1  x{face}") and line.endswith(
        f"{face}\N{HORIZONTAL ELLIPSIS}"
    )
    assert one(panel, "text", text="x" + face * 999)  # 1999 units kept, not 2000
    assert one(panel, "kv")["title"] == title
