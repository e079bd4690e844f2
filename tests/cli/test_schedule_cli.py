"""``rwq schedule`` and ``rwq scheduler`` as a user runs them: real processes on the
session's Valkey, bad input one clean line naming the argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from test_app import assert_clean_error, rwq

from rwq.config import Settings
from rwq.queue.broker import Broker


def fired_ticks(client: redis.Redis, queue: str) -> list[int]:
    key = Broker(client, Settings()).queue_keys(queue).events
    return [int(f["tick"]) for _, f in client.xrange(key) if f["type"] == "schedule.fired"]


def test_add_list_and_remove(valkey_url: str, redis_client: redis.Redis) -> None:
    added = rwq("schedule", "add", "nightly", "--queue", "reports", "--cron", "0 3 * * *",
                "--timezone", "Europe/Berlin", "--payload", '{"kind": "nightly"}',
                "--priority", "7", "--tenant", "acme", "--json", url=valkey_url)  # fmt: skip
    assert added.returncode == 0, added.stderr
    state = json.loads(added.stdout)
    assert (state["name"], state["queue"], state["expression"]) == (
        "nightly", "reports", "0 3 * * * (Europe/Berlin)")  # fmt: skip
    assert state["payload"] == {"kind": "nightly"} and state["priority"] == 7
    assert state["next_ms"] > 0 and state["last_job"] is None
    beat = rwq("schedule", "add", "beat", "-q", "q", "--every", "5m", "--missed", "skip",
               url=valkey_url)  # fmt: skip
    assert beat.returncode == 0 and "every 5m on q" in beat.stdout
    again = rwq("schedule", "add", "beat", "-q", "q", "--every", "5m", "--missed", "skip",
                url=valkey_url)  # fmt: skip
    assert "unchanged" in again.stdout
    listed = json.loads(rwq("schedule", "list", "--json", url=valkey_url).stdout)
    assert [(s["name"], s["missed"]) for s in listed] == [("beat", "skip"), ("nightly", "coalesce")]
    table = rwq("admin", "schedules", url=valkey_url)
    assert table.returncode == 0 and "nightly" in table.stdout and "every 5m" in table.stdout
    assert rwq("schedule", "remove", "beat", url=valkey_url).returncode == 0
    assert_clean_error(rwq("schedule", "remove", "beat", url=valkey_url), "no schedule", "beat")
    listed = json.loads(rwq("schedule", "list", "--json", url=valkey_url).stdout)
    assert [s["name"] for s in listed] == ["nightly"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--cron", "61 * * * *"), ("--cron", "Bad minute")),
        (("--cron", "* * *"), ("--cron", "5 fields")),
        (("--every", "soon"), ("--every", "expected a duration")),
        (("--every", "100ms"), ("--every", "at least 1s")),
        (("--every", "5m", "--cron", "* * * * *"), ("--cron or --every",)),
        ((), ("--cron", "--every")),
        (("--cron", "0 3 * * *", "--timezone", "Mars/Base"), ("--timezone", "Mars/Base")),
        (("--every", "1m", "--payload", "{nope"), ("--payload", "JSON")),
        (("--every", "1m", "--priority", "12"), ("--priority",)),
        (("--every", "1m", "--missed", "later"), ("--missed",)),
        (("--every", "1m", "-q", "dead"), ("--queue", "reserved")),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(
    valkey_url: str, redis_client: redis.Redis, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    result = rwq("schedule", "add", "bad", "-q", "q", *args, url=valkey_url)
    assert_clean_error(result, *needles)
    assert redis_client.keys("*schedule*") == []


def test_a_bad_name_is_named(valkey_url: str) -> None:
    assert_clean_error(rwq("schedule", "add", "a b", "-q", "q", "--every", "1m", url=valkey_url),
                       "NAME", "1-48")  # fmt: skip


def test_rwq_yaml_schedules_are_refused_at_run_time_and_checked(
    tmp_path: Path, valkey_url: str, redis_client: redis.Redis
) -> None:
    config = tmp_path / "rwq.yaml"
    config.write_text("schedules:\n  nightly:\n    queue: reports\n    cron: '0 3 * * *'\n")
    result = rwq("--config", str(config), "schedule", "add", "nightly", "-q", "r",
                 "--every", "1m", url=valkey_url)  # fmt: skip
    assert_clean_error(result, "NAME", "rwq.yaml")
    config.write_text("schedules:\n  nightly:\n    queue: reports\n    cron: '0 3 * * 8'\n")
    result = rwq("--config", str(config), "schedule", "list", url=valkey_url)
    assert_clean_error(result, str(config), "schedules", "nightly.cron", "Bad day-of-week")


def test_schedulers_in_several_processes_fire_each_tick_once(
    tmp_path: Path, valkey_url: str, redis_client: redis.Redis
) -> None:
    config = tmp_path / "rwq.yaml"
    config.write_text("schedules:\n  beat:\n    queue: q\n    every: 1s\n")
    command = ["--config", str(config), "scheduler", "--duration", "4s"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env["RWQ_REDIS_URL"] = valkey_url
    procs = [
        subprocess.Popen([sys.executable, "-m", "rwq", *command], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
    ticks = fired_ticks(redis_client, "q")
    assert ticks and len(ticks) == len(set(ticks)) and ticks == sorted(ticks)
    pending = sorted(redis_client.zrange("rwq:{rwq:q:q}:pending", 0, -1))
    assert pending == sorted(f"beat:{t}" for t in ticks)
    listed = json.loads(rwq("schedule", "list", "--json", url=valkey_url).stdout)
    assert listed[0]["origin"] == "rwq.yaml" and listed[0]["fired"] == len(ticks)


def test_a_worker_runs_a_scheduler_unless_told_not_to(
    valkey_url: str, redis_client: redis.Redis
) -> None:
    rwq("schedule", "add", "beat", "-q", "q", "--every", "1s",
        "--payload", '{"duration_ms": 1, "fail_rate": 0}', url=valkey_url)  # fmt: skip
    app = ("-q", "q", "--app", "rwq.demo.workload:handlers", "--duration", "3s")
    off = rwq("worker", *app, "--no-scheduler", url=valkey_url)
    assert off.returncode == 0, off.stderr
    assert fired_ticks(redis_client, "q") == []
    on = rwq("worker", *app, url=valkey_url)
    assert on.returncode == 0, on.stderr
    assert fired_ticks(redis_client, "q")
    stats = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)
    assert stats["queues"][0]["completed_total"] >= 1
