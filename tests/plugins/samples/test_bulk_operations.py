"""The bulk-operations sample plugin: through ``rwq plugin check`` on the demo workload's
events, and through a real plugin manager on real dead letters in Valkey (requeue, delete,
confirmation, age filter, read-only refusal)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from sample_panels import Panel, find, start_plugin, texts, validated

from rwq.config import Settings
from rwq.host.check import check_plugin, read_events
from rwq.plugins.engine.manager import PluginManager
from rwq.plugins.package.user_config import PluginConfigError
from rwq.plugins.runtimes.starlark import StarlarkRuntime
from rwq.queue.broker import Broker, Failure
from rwq.queue.producer import Producer
from rwq.samples import SAMPLES_DIR

PLUGIN = SAMPLES_DIR / "bulk-operations"
FIXTURES = Path(__file__).parent / "fixtures"
NAME = "bulk-operations"
SCOPED = ("admin.queue.peek", "admin.queue.requeue", "admin.queue.purge", "events.subscribe")


# -- rwq plugin check on the demo's events ----------------------------------------------------


def test_check_on_demo_events_renders_the_panel(
    settings: Settings, redis_client: redis.Redis
) -> None:
    events = read_events(FIXTURES / "demo-workload.jsonl")
    report = check_plugin(
        settings, PLUGIN, grants=list(SCOPED), events=events, batch_size=50, client=redis_client
    )
    assert report.status == "ok", report.to_dict()
    assert report.permissions["granted"] == sorted(SCOPED)
    assert report.events["handed"] == 42  # only dead letters, requeues and purges
    assert report.render is not None
    elements = validated(report.render)
    text = texts(elements)
    # The check runs under a private key prefix: no dead letters there, but the events count.
    assert "0 dead letters in tenant.* · 0 match · 42 new since opened" in text
    (table,) = find(elements, "table")
    assert table["columns"] == ["id", "queue", "tenant", "error", "age"]
    filters = dict(find(elements, "kv")[0]["items"])
    assert filters == {
        "queue (q)": "tenant.*",
        "tenant (t)": "(any)",
        "error (e)": "(any)",
        "age (a)": "any",
    }
    labels = [b["label"] for b in find(elements, "button")]
    assert labels == [
        "Next queue", "Next tenant", "Next error", "Next age",
        "Requeue", "Delete", "Refresh", "Clear filters",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"page_size": 0}, "config.page_size must be an integer from 1 to 500, got 0"),
        ({"age": ">2w"}, "config.age must be one of config.age_windows"),
        ({"age_windows": ["any", "old"]}, 'config.age_windows: "old" is not'),
        ({"scope": "tenant/*"}, "config.scope must be a queue name or glob"),
        ({"colour": "red"}, "config.colour is not a setting"),
    ],
)
def test_bad_config_refuses_to_start_naming_the_field(
    settings: Settings,
    redis_client: redis.Redis,
    tmp_path: Path,
    config: dict[str, Any],
    message: str,
) -> None:
    plugin = tmp_path / NAME
    shutil.copytree(PLUGIN, plugin)
    manifest = yaml.safe_load((plugin / "manifest.yaml").read_text(encoding="utf-8"))
    manifest["config"].update(config)
    (plugin / "manifest.yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    report = check_plugin(settings, plugin, grants=list(SCOPED), client=redis_client)
    assert report.status != "ok"
    assert any(message in e for e in report.errors), report.errors


# -- a real manager on real dead letters --------------------------------------------------------


def dead_letter(broker: Broker, queue: str, tenant: str, error: str, n: int) -> list[str]:
    """Enqueue ``n`` jobs on ``queue`` and dead-letter them with ``error``; their ids."""
    producer = Producer(broker)
    ids = [producer.enqueue(queue, {"n": i, "kind": "x"}, tenant=tenant).id for i in range(n)]
    fetched = broker.fetch(queue, "w-test", n).jobs
    assert sorted(j.id for j in fetched) == sorted(ids)
    broker.fail(queue, "w-test", [Failure(i, 1.0, error, permanent=True) for i in ids])
    return ids


@pytest.fixture
def start_panel(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[Callable[..., Panel]]:
    managers: list[PluginManager] = []
    plugins = tmp_path / "plugins"
    shutil.copytree(PLUGIN, plugins / NAME)

    def start(
        *,
        read_only: bool = False,
        config: dict[str, Any] | None = None,
        grants: tuple[str, ...] = SCOPED,
    ) -> Panel:
        manager = start_plugin(
            settings.replace(read_only=read_only),
            redis_client,
            plugins / NAME,
            {"starlark": StarlarkRuntime()},
            grants=grants,
            queues=("tenant.*",),
            config=config or None,
        )
        managers.append(manager)
        if set(grants) != set(SCOPED):  # the user refused the rest
            manager.deny(NAME, sorted(set(SCOPED) - set(grants)))
        assert manager.state(NAME).value == "active", manager.reason(NAME)
        return Panel(manager, NAME)

    yield start
    for manager in managers:
        manager.stop()


@pytest.fixture
def broker(redis_client: redis.Redis, settings: Settings) -> Broker:
    return Broker(redis_client, settings)


def dead_ids(broker: Broker, queue: str) -> set[str]:
    return set(broker.client.zrange(broker.queue_keys(queue).dead, 0, -1))


def test_requeue_and_delete_real_dead_letters_with_confirmation(
    broker: Broker, start_panel: Callable[..., Panel]
) -> None:
    acme = dead_letter(broker, "tenant.acme", "acme", "OSError: template store unavailable", 3)
    initech = dead_letter(broker, "tenant.initech", "initech", "TimeoutError: warehouse", 4)
    other = dead_letter(broker, "billing", "acme", "OSError: template store unavailable", 2)
    panel = start_panel()
    panel.wait_for_text(lambda t: "7 dead letters in tenant.* · 7 match" in t, "the first refresh")

    panel.key("q")  # the queue filter cycles through the queues seen: tenant.acme first
    text = panel.text()
    assert "7 dead letters in tenant.* · 3 match" in text and "tenant.acme" in text
    (table,) = find(panel.render(), "table")
    rows = table["rows"]
    assert sorted(r[0] for r in rows) == sorted(acme)
    assert {(r[1], r[2], r[3]) for r in rows} == {
        ("tenant.acme", "acme", "OSError: template store unavailable")
    }

    panel.key("r")  # arms
    assert "requeue 3 jobs? press y / Confirm" in panel.text()
    assert dead_ids(broker, "tenant.acme") == set(acme)
    panel.key("y")  # confirms: runs in pages
    panel.wait_for_text(lambda t: "requeued 3 jobs, 0 failed" in t, "the requeue to finish")
    assert dead_ids(broker, "tenant.acme") == set()
    pending = broker.client.zrange(broker.queue_keys("tenant.acme").pending, 0, -1)
    assert sorted(pending) == sorted(acme)
    assert dead_ids(broker, "tenant.initech") == set(initech)
    assert dead_ids(broker, "billing") == set(other)

    panel.button("queue")  # next queue seen: tenant.initech
    panel.button("error")  # the error filter: the one error seen there
    text = panel.text()
    assert "4 dead letters in tenant.* · 4 match" in text
    assert "TimeoutError: warehouse" in text
    panel.key("d")
    assert "delete 4 jobs?" in panel.text()
    panel.key("z")  # anything else cancels
    assert "delete cancelled" in panel.text()
    assert dead_ids(broker, "tenant.initech") == set(initech)
    panel.button("delete")
    panel.button("confirm")
    panel.wait_for_text(lambda t: "deleted 4 jobs, 0 failed" in t, "the delete to finish")
    assert dead_ids(broker, "tenant.initech") == set()
    qk = broker.queue_keys("tenant.initech")
    assert not any(broker.client.exists(qk.job(i)) for i in initech)
    assert dead_ids(broker, "billing") == set(other)  # outside the scope: never touched


def test_requeue_in_pages_shows_progress_and_counts(
    broker: Broker, start_panel: Callable[..., Panel]
) -> None:
    ids = dead_letter(broker, "tenant.globex", "globex", "TimeoutError: upstream", 25)
    panel = start_panel(config={"page_size": 4})
    panel.wait_for_text(lambda t: "25 match" in t, "the first refresh")
    panel.key("r")
    panel.key("r")  # the same key again confirms too
    seen_progress = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        elements = panel.render()
        bars = find(elements, "progress")
        if bars:
            seen_progress = True
            assert bars[0]["total"] == 25
            assert "requeued:" in bars[0]["label"]
        if "requeued 25 jobs, 0 failed" in texts(elements):
            break
        time.sleep(0.01)
    assert "requeued 25 jobs, 0 failed" in panel.text()
    assert seen_progress  # 25 jobs in pages of 4 take seven 200 ms ticks
    assert dead_ids(broker, "tenant.globex") == set()
    assert broker.client.zcard(broker.queue_keys("tenant.globex").pending) == len(ids)


def test_the_age_filter_selects_by_when_they_died(
    broker: Broker, start_panel: Callable[..., Panel]
) -> None:
    old = dead_letter(broker, "tenant.hooli", "hooli", "index refresh timed out", 2)
    now_s, _ = broker.client.time()
    for job_id in old[:1]:  # dead-lettered two hours ago
        qk = broker.queue_keys("tenant.hooli")
        broker.client.hset(qk.job(job_id), "dead_at", str((now_s - 7200) * 1000))
        broker.client.zadd(qk.dead, {job_id: (now_s - 7200) * 1000}, xx=True)
    panel = start_panel()
    panel.wait_for_text(lambda t: "2 match" in t, "the first refresh")
    panel.key("a")  # >5m
    assert "2 dead letters in tenant.* · 1 match" in panel.text()
    panel.key("a")  # >1h
    panel.key("a")  # >1d
    assert "· 0 match" in panel.text()
    panel.key("r")
    assert "nothing to requeue" in panel.text()
    panel.key("a")  # <5m
    panel.key("r")
    panel.key("y")
    panel.wait_for_text(lambda t: "requeued 1 jobs" in t, "the requeue")
    assert dead_ids(broker, "tenant.hooli") == {old[0]}


def test_read_only_mode_refuses_with_a_clear_message(
    broker: Broker, start_panel: Callable[..., Panel]
) -> None:
    ids = dead_letter(broker, "tenant.umbrella", "umbrella", "endpoint refused", 3)
    panel = start_panel(read_only=True)
    panel.wait_for_text(lambda t: "3 match" in t, "the first refresh")  # reading still works
    panel.key("r")
    panel.key("y")
    text = panel.wait_for_text(lambda t: "read-only" in t, "the refusal")
    assert "rwq is in read-only mode: nothing more can be requeued (0 were before)" in text
    panel.key("d")
    panel.key("y")
    assert "nothing more can be deleted" in panel.wait_for_text(lambda t: "deleted" in t, "refusal")
    assert dead_ids(broker, "tenant.umbrella") == set(ids)


def test_filters_survive_a_reload_and_bad_config_is_refused(
    broker: Broker, start_panel: Callable[..., Panel]
) -> None:
    dead_letter(broker, "tenant.acme", "acme", "OSError: template store unavailable", 2)
    dead_letter(broker, "tenant.globex", "globex", "card declined", 1)
    panel = start_panel()
    panel.wait_for_text(lambda t: "3 match" in t, "the first refresh")
    panel.key("t")  # tenant: acme
    panel.key("a")  # age: >5m
    swapped = panel.manager.reload(NAME)
    assert swapped.ok and swapped.state_handed_over, swapped
    filters = dict(find(panel.render(), "kv")[0]["items"])
    assert (filters["tenant (t)"], filters["age (a)"]) == ("acme", ">5m")
    with pytest.raises(PluginConfigError, match=r"config\.page_size must be an integer"):
        panel.manager.set_config(NAME, {"page_size": 9999})
    panel.manager.set_config(NAME, {"tenant": "globex"})  # the new defaults apply
    text = panel.text()
    assert "3 dead letters in tenant.* · 1 match" in text and "card declined" in text


def test_without_the_purge_permission_a_delete_fails_and_says_why(
    broker: Broker, start_panel: Callable[..., Panel]
) -> None:
    ids = dead_letter(broker, "tenant.acme", "acme", "boom", 2)
    panel = start_panel(grants=tuple(p for p in SCOPED if p != "admin.queue.purge"))
    panel.wait_for_text(lambda t: "2 match" in t, "the first refresh")
    panel.key("d")
    panel.key("y")
    text = panel.wait_for_text(lambda t: "deleted 0 jobs, 2 failed" in t, "the refusal")
    assert "tenant.acme: permission_denied" in text and "admin.queue.purge" in text
    assert dead_ids(broker, "tenant.acme") == set(ids)
    panel.key("r")  # requeueing is still granted
    panel.key("y")
    panel.wait_for_text(lambda t: "requeued 2 jobs, 0 failed" in t, "the requeue")
    assert dead_ids(broker, "tenant.acme") == set()
