"""Flow control from the command line: ``rwq admin rate-limit``, ``rwq enqueue
--unique-key``, ``rwq admin cancel`` and progress in ``rwq admin peek --state processing``;
bad values are one line naming the argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from rwq.config import Settings
from rwq.queue.broker import Broker
from rwq.queue.job_control import WorkerControl
from rwq.queue.producer import Producer


def rwq(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env["RWQ_REDIS_URL"] = url
    env["COLUMNS"] = "160"
    return subprocess.run(
        [sys.executable, "-m", "rwq", *args], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A non-zero exit with one line on stderr naming the problem, and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_rate_limit_set_shown_and_lifted(valkey_url: str, redis_client: redis.Redis) -> None:
    assert rwq("enqueue", "mail", "1", url=valkey_url).returncode == 0
    assert rwq("admin", "rate-limit", "mail", url=valkey_url).stdout.strip() == (
        "mail: no rate limit"
    )
    set_ = rwq("admin", "rate-limit", "mail", "100/1m", url=valkey_url)
    assert set_.returncode == 0, set_.stderr
    assert "at most 100 job(s) start per 1m (stored)" in set_.stdout
    stats = rwq("admin", "stats", url=valkey_url).stdout
    assert "rate limit" in stats and "0 of 100/1m" in stats
    shown = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)["queues"][0]
    assert (shown["rate_limit"], shown["rate_limit_source"], shown["rate_used"]) == (
        "100/1m", "stored", 0,
    )  # fmt: skip
    off = json.loads(rwq("admin", "rate-limit", "mail", "--off", "--json", url=valkey_url).stdout)
    assert off == {"queue": "mail", "rate_limit": None}
    assert redis_client.get("rwq:{rwq:q:mail}:rate_limit") == "off"
    assert "no rate limit" in rwq("admin", "rate-limit", "mail", "--reset", url=valkey_url).stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["mail", "fast"], ["RATE: expected jobs per period like 100/1m"]),
        (["mail", "0/1m"], ["RATE: the count must be 1"]),
        (["mail", "5/2d"], ["RATE: the period must be 1ms to 1d"]),
        (["mail", "5/1m", "--off"], ["give one of RATE, --off or --reset"]),
        (["nope", "5/1m"], ["unknown queue 'nope'"]),
    ],
)
def test_bad_rate_limits_name_the_argument(
    valkey_url: str, redis_client: redis.Redis, args: list[str], needles: list[str]
) -> None:
    rwq("enqueue", "mail", "1", url=valkey_url)
    assert_clean_error(rwq("admin", "rate-limit", *args, url=valkey_url), *needles)


def test_unique_keys_refuse_or_return_the_existing_job(
    valkey_url: str, redis_client: redis.Redis
) -> None:
    first = rwq("enqueue", "q", "1", "--unique-key", "k", "--json", url=valkey_url)
    assert first.returncode == 0, first.stderr
    job = json.loads(first.stdout)
    assert job["unique_key"] == "k"
    again = rwq("enqueue", "q", "2", "--unique-key", "k", url=valkey_url)
    assert_clean_error(again, f"unique key 'k' is held by job {job['id']} on q",
                       "--on-duplicate existing")  # fmt: skip
    existing = rwq("enqueue", "q", "3", "--unique-key", "k", "--on-duplicate", "existing",
                   url=valkey_url)  # fmt: skip
    assert existing.returncode == 0, existing.stderr
    assert f"job {job['id']} holds unique key 'k' on q (pending)" in existing.stdout
    assert redis_client.zcard("rwq:{rwq:q:q}:pending") == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--unique-key", "k", "--unique-ttl", "soon"], "--unique-ttl: expected a duration"),
        (["--unique-key", "k", "--unique-ttl", "0"], "--unique-ttl: must be more than 0"),
        (["--unique-ttl", "1m"], "--unique-ttl: needs --unique-key"),
        (["--unique-key", "k", "--on-duplicate", "replace"], "--on-duplicate: expected refuse"),
        (["--unique-key", ""], "--unique-key must be 1-200"),
    ],
)
def test_bad_unique_options_name_the_option(
    valkey_url: str, redis_client: redis.Redis, args: list[str], needle: str
) -> None:
    assert_clean_error(rwq("enqueue", "q", "1", *args, url=valkey_url), needle)
    assert redis_client.dbsize() == 0


def test_cancel_from_the_command_line(valkey_url: str, redis_client: redis.Redis) -> None:
    job = json.loads(rwq("enqueue", "q", "1", "--delay", "1h", "--json", url=valkey_url).stdout)
    done = rwq("admin", "cancel", job["id"], url=valkey_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cancelled {job['id']} on q (it was scheduled)"
    again = rwq("admin", "cancel", job["id"], "--queue", "q", url=valkey_url)
    assert_clean_error(again, f"job {job['id']} on q cannot be cancelled", "cancelled already")
    assert_clean_error(rwq("admin", "cancel", "nope", url=valkey_url), "no job 'nope' on any queue")
    assert_clean_error(rwq("admin", "cancel", "x", "-q", "other", url=valkey_url),
                       "unknown queue 'other'")  # fmt: skip


def test_peek_processing_shows_progress(
    valkey_url: str, redis_client: redis.Redis, settings: Settings
) -> None:
    broker = Broker(redis_client, settings)
    Producer(broker).enqueue("q", {"n": 1})
    [job] = broker.fetch("q", "w1", 1).jobs
    broker.client.hset(broker.keys.workers, "w1", "{}")  # peek looks at registered workers
    job.attach(WorkerControl(broker, "w1"))
    assert job.progress(0.4, "resizing 4 of 10")
    table = rwq("admin", "peek", "q", "--state", "processing", url=valkey_url)
    assert table.returncode == 0, table.stderr
    assert "progress" in table.stdout and "40% resizing 4 of 10" in table.stdout
    [shown] = json.loads(rwq("admin", "peek", "q", "--state", "processing", "--json",
                             url=valkey_url).stdout)  # fmt: skip
    assert (shown["progress"], shown["progress_message"]) == (0.4, "resizing 4 of 10")
    lookup = rwq("admin", "job", job.id, url=valkey_url)
    assert lookup.returncode == 0, lookup.stderr
    assert "progress:      40% resizing 4 of 10" in lookup.stdout
