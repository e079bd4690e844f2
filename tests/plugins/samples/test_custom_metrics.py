"""The custom-metrics sample plugin: through ``rwq plugin check`` on the demo workload's
events, its config checks, and through a real plugin manager: switching metrics with keys,
buckets kept across a hot reload (export/import_state) and a restart (plugin storage)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from sample_panels import Panel, find, start_plugin, validated

from rwq.config import Settings
from rwq.host.check import check_plugin, read_events
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.host_api.storage import PluginStorage
from rwq.plugins.package.user_config import PluginConfigError
from rwq.plugins.runtimes.starlark import StarlarkRuntime
from rwq.queue.events import Event
from rwq.queue.keys import Keys
from rwq.samples import SAMPLES_DIR

PLUGIN = SAMPLES_DIR / "custom-metrics"
FIXTURES = Path(__file__).parent / "fixtures"
NAME = "custom-metrics"
GRANTS = ["events.subscribe", "storage.read", "storage.write"]


def groups(elements: list[Any]) -> dict[str, str]:
    """The shown groups of the selected metric: name -> value (the rows of three columns)."""
    out = {}
    for row in find(elements, "columns"):
        name, spark, value = row["children"]
        assert spark["type"] == "sparkline"
        out[name["text"]] = value["text"]
    return out


def overview(elements: list[Any]) -> dict[str, str]:
    (table,) = find(elements, "table")
    return {row[0]: row[2] for row in table["rows"]}


def title(elements: list[Any]) -> str:
    return str(find(elements, "text")[0]["text"])


# -- rwq plugin check on the demo's events ----------------------------------------------------


def test_check_on_demo_events_shows_the_metrics(
    settings: Settings, redis_client: redis.Redis
) -> None:
    events = read_events(FIXTURES / "demo-workload.jsonl")
    report = check_plugin(
        settings, PLUGIN, grants=GRANTS, events=events, batch_size=100, client=redis_client
    )
    assert report.status == "ok", report.to_dict()
    assert report.events["handed"] == 384  # every event of the fixture is some metric's
    assert report.render is not None
    elements = validated(report.render)
    assert title(elements) == "failures_by_tenant  [1/6]"
    # 42 failures in 30 s of events, as rates over the 60 s window.
    assert groups(elements) == {
        "all": "0.70/s",
        "initech": "0.43/s",
        "globex": "0.15/s",
        "umbrella": "0.10/s",
        "hooli": "0.02/s",
    }
    spark = find(elements, "sparkline")[0]["values"]
    assert len(spark) == 60 and sum(spark) == 42
    assert overview(elements) == {
        "failures_by_tenant": "0.70/s",
        "completed_by_tenant": "300",
        "duration_by_tenant": "40.0 ms",
        "dead_letters_by_error": "42",
        "wait_by_queue": "-",  # no job.started events in the fixture
        "completed_by_kind": "300",
    }


def test_check_groups_on_a_payload_label(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """``by: payload.kind`` reads the ``labels`` the job events carry (setting event_labels)."""
    events = read_events(FIXTURES / "demo-workload.jsonl")
    assert events[0].data["labels"] == {"kind": "search.reindex"}
    plugin = tmp_path / NAME
    shutil.copytree(PLUGIN, plugin)
    manifest = yaml.safe_load((plugin / "manifest.yaml").read_text(encoding="utf-8"))
    by_kind = [m for m in manifest["config"]["metrics"] if m["by"] == "payload.kind"]
    manifest["config"]["metrics"] = by_kind  # the shown one: the first
    (plugin / "manifest.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    report = check_plugin(settings, plugin, grants=GRANTS, events=events, client=redis_client)
    assert report.status == "ok", report.to_dict()
    assert report.render is not None
    elements = validated(report.render)
    assert title(elements) == "completed_by_kind  [1/1]"
    assert "count of job.completed by payload.kind over 60s" in json.dumps(elements)
    assert groups(elements) == {
        "all": "300",
        "email.send": "60",
        "invoice.render": "60",
        "webhook.deliver": "60",
        "payment.capture": "30",
        "payment.refund": "30",
    }


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        (
            [{"name": "purges_by_kind", "event": "queue.purged", "by": "payload.kind"}],
            "metrics[0] (purges_by_kind).by: only job.* events carry payload labels and "
            "queue.purged matches none; group by one of queue, type, source, none, count, target",
        ),
        (
            [{"name": "a", "event": "job.*", "by": "payload."}],
            'metrics[0] (a).by: expected payload.<field> with a payload field name, got "payload."',
        ),
        (
            [{"name": "a", "event": "job.*", "by": "payload.a b"}],
            "metrics[0] (a).by: expected payload.<field> with a payload field name, "
            'got "payload.a b"',
        ),
        (
            [{"name": "a", "event": "job.failed", "by": "colour"}],
            'metrics[0] (a).by: job.failed events have no field "colour"',
        ),
        (
            [{"name": "a", "event": "job.failed", "kind": "p99"}],
            'metrics[0] (a).kind: expected one of count, rate, avg, got "p99"',
        ),
        (
            [{"name": "a", "event": "job.failed", "kind": "avg"}],
            "metrics[0] (a).field: kind avg needs a numeric field of job.failed events "
            "(attempt, duration_ms)",
        ),
        (
            [{"name": "a", "event": "job.failed", "window": "2h"}],
            'metrics[0] (a).window: expected 10s to 600s ("60s", "5m"), got "2h"',
        ),
        (
            [{"name": "a", "event": "job.failed"}, {"name": "a", "event": "job.completed"}],
            "metrics[1] (a).name: another metric is called a",
        ),
        (
            [{"name": "a", "event": "jobs.failed"}],
            "metrics[0] (a).event: jobs.failed matches no event type",
        ),
        ([{"event": "job.failed"}], "metrics[0].name: expected 1-40 letters"),
        ([], "config.metrics: expected a list of 1-16 metrics"),
    ],
)
def test_bad_metrics_refuse_to_start_naming_the_metric_and_field(
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    metrics: list[Any],
    message: str,
) -> None:
    plugin = tmp_path / NAME
    shutil.copytree(PLUGIN, plugin)
    manifest = yaml.safe_load((plugin / "manifest.yaml").read_text(encoding="utf-8"))
    manifest["config"]["metrics"] = metrics
    (plugin / "manifest.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    report = check_plugin(settings, plugin, grants=GRANTS, client=redis_client)
    assert report.status != "ok"
    assert any(message in e for e in report.errors), report.errors


# -- a real manager -------------------------------------------------------------------------


def job_event(kind: str, tenant: str, **data: Any) -> Event:
    return Event(
        type=kind,
        ts=time.time() * 1000,
        source="queue",
        queue=f"tenant.{tenant}",
        data={"job_id": f"j{time.monotonic_ns()}", "tenant": tenant, **data},
    )


@pytest.fixture
def start_panel(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Callable[..., Panel]]:
    managers: list[PluginManager] = []
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGIN, plugins / NAME)

    def start(config: dict[str, Any] | None = None) -> Panel:
        manager = start_plugin(
            settings,
            redis_client,
            plugins / NAME,
            {"starlark": StarlarkRuntime()},
            grants=GRANTS,
            config=config,
        )
        managers.append(manager)
        assert manager.state(NAME).value == "active", manager.reason(NAME)
        return Panel(manager, NAME, size=(80, 24))

    yield start
    for manager in managers:
        manager.stop()


def publish_failures(panel: Panel) -> None:
    panel.manager.bus.publish_many(
        [job_event("job.failed", "initech", duration_ms=300, error="boom")] * 3
        + [job_event("job.failed", "acme", duration_ms=10, error="bang")]
        + [job_event("job.completed", "acme", duration_ms=d) for d in (10, 20, 60)]
    )


def test_keys_switch_the_shown_metric(start_panel: Callable[..., Panel]) -> None:
    panel = start_panel()
    publish_failures(panel)
    elements = panel.wait_for(lambda e: "initech" in groups(e), "the failures")
    assert groups(elements) == {"all": "0.07/s", "initech": "0.05/s", "acme": "0.02/s"}
    panel.key("n")
    elements = panel.render()
    assert title(elements) == "completed_by_tenant  [2/6]"
    assert groups(elements) == {"all": "3", "acme": "3"}
    panel.key("n")
    assert groups(panel.render()) == {"all": "30.0 ms", "acme": "30.0 ms"}
    panel.key("p")
    panel.key("p")
    panel.key("left")  # wraps round to the last
    assert title(panel.render()) == "completed_by_kind  [6/6]"
    assert groups(panel.render()) == {"all": "3", "(none)": "3"}  # these events have no labels
    panel.key("4")
    elements = panel.render()
    assert title(elements) == "dead_letters_by_error  [4/6]"
    assert "no job.dead_lettered events in the last 300s" in json.dumps(elements)
    table = find(elements, "table")[0]
    assert table["row_styles"][3] == "reverse"
    panel.manager.on_input(NAME, {"kind": "select", "id": "metrics", "index": 0, "value": "x"})
    assert title(panel.render()) == "failures_by_tenant  [1/6]"
    panel.key("r")  # resets the shown metric only
    assert groups(panel.render()) == {"all": "0.00/s"}
    panel.key("2")
    assert groups(panel.render()) == {"all": "3", "acme": "3"}


def test_metrics_survive_a_reload_and_a_restart(
    start_panel: Callable[..., Panel], redis_client: redis.Redis, settings: Settings
) -> None:
    panel = start_panel()
    publish_failures(panel)
    panel.wait_for(lambda e: "initech" in groups(e), "the failures")

    # A hot reload hands the buckets over (export_state -> import_state).
    swapped = panel.manager.reload(NAME)
    assert swapped.ok and swapped.state_handed_over, swapped
    assert groups(panel.render()) == {"all": "0.07/s", "initech": "0.05/s", "acme": "0.02/s"}
    panel.key("3")  # and the new version still counts
    panel.manager.bus.publish_many([job_event("job.completed", "acme", duration_ms=90)])
    panel.wait_for(lambda e: groups(e).get("acme") == "45.0 ms", "the new event")

    # Stopping saves the buckets to the plugin's store; a new host loads them.
    panel.manager.stop()
    store = PluginStorage(
        redis_client, Keys(settings.prefix), NAME, max_keys=1000, max_bytes=1 << 20
    )
    saved = json.loads(store.get("metric.duration_by_tenant") or "{}")
    assert saved["v"] == 1 and set(saved["groups"]) == {"acme"}
    again = start_panel()
    elements = again.render()
    assert groups(elements) == {"all": "0.07/s", "initech": "0.05/s", "acme": "0.02/s"}
    assert overview(elements)["completed_by_tenant"] == "4"


def test_buckets_are_saved_periodically(
    start_panel: Callable[..., Panel], redis_client: redis.Redis, settings: Settings
) -> None:
    defaults = yaml.safe_load((PLUGIN / "manifest.yaml").read_text(encoding="utf-8"))["config"]
    panel = start_panel({**defaults, "persist_s": 1})
    publish_failures(panel)
    store = PluginStorage(
        redis_client, Keys(settings.prefix), NAME, max_keys=1000, max_bytes=1 << 20
    )

    def saved() -> dict[str, Any]:
        return dict(json.loads(store.get("metric.failures_by_tenant") or "{}"))

    deadline = time.monotonic() + 15
    while "initech" not in saved().get("groups", {}):
        assert time.monotonic() < deadline, "never saved"
        time.sleep(0.05)
    cells = saved()["groups"]["initech"].values()
    assert sum(n for n, _ in cells) == 3
    assert panel.manager.state(NAME).value == "active"


def test_set_config_checks_and_keeps_unchanged_metrics(start_panel: Callable[..., Panel]) -> None:
    panel = start_panel()
    publish_failures(panel)
    panel.wait_for(lambda e: "initech" in groups(e), "the failures")
    bad = {"metrics": [{"name": "x", "event": "worker.status", "by": "payload.kind"}]}
    with pytest.raises(PluginConfigError, match=r"metrics\[0\] \(x\)\.by: only job\.\* events"):
        panel.manager.set_config(NAME, bad)
    failures = {
        "name": "failures_by_tenant", "event": "job.failed", "queue": "tenant.*",
        "by": "tenant", "kind": "rate", "window": "60s",
    }  # fmt: skip
    by_error = {"name": "failures_by_error", "event": "job.failed", "by": "error"}
    panel.manager.set_config(NAME, {"metrics": [by_error, failures]})
    elements = panel.render()
    assert title(elements) == "failures_by_error  [1/2]"
    assert groups(elements) == {"all": "0"}  # a new metric starts empty
    assert overview(elements) == {"failures_by_error": "0", "failures_by_tenant": "0.07/s"}
    panel.manager.bus.publish_many([job_event("job.failed", "acme", error="disk full")])
    elements = panel.wait_for(lambda e: "disk full" in groups(e), "the new metric's event")
    assert groups(elements) == {"all": "1", "disk full": "1"}
