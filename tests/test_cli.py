"""The command line end to end: real processes against the session's Valkey."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis


def rwq(*args: str, url: str | None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    if url:
        env["RWQ_REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "rwq", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A non-zero exit with one line on stderr naming the problem, and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_enqueue_then_stats_and_peek_as_json(valkey_url: str, redis_client: redis.Redis) -> None:
    result = rwq("enqueue", "tenant.acme", '{"n": 1}', "--tenant", "acme", "--json", url=valkey_url)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["queue"] == "tenant.acme" and job["tenant"] == "acme"

    stats = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)
    [queue] = stats["queues"]
    assert queue["queue"] == "tenant.acme" and queue["pending"] == 1
    for field in ("processing", "scheduled", "dead", "completed_total", "failed_total",
                  "paused", "oldest_pending_age_s", "throughput_1m"):  # fmt: skip
        assert field in queue

    peeked = json.loads(rwq("admin", "peek", "tenant.acme", "--json", url=valkey_url).stdout)
    assert [j["id"] for j in peeked] == [job["id"]]
    assert peeked[0]["payload"] == {"n": 1}


def test_payload_from_stdin_and_file(
    valkey_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    assert rwq("enqueue", "q", "-", url=valkey_url, stdin='{"a": 1}').returncode == 0
    path = tmp_path / "job.json"
    path.write_text('{"b": 2}')
    assert rwq("enqueue", "q", f"@{path}", url=valkey_url).returncode == 0
    peeked = json.loads(rwq("admin", "peek", "q", "--json", url=valkey_url).stdout)
    assert sorted(json.dumps(j["payload"]) for j in peeked) == ['{"a": 1}', '{"b": 2}']


def test_malformed_json_payload(valkey_url: str, redis_client: redis.Redis) -> None:
    assert_clean_error(rwq("enqueue", "q", "{oops", url=valkey_url), "PAYLOAD", "not valid JSON")
    assert redis_client.dbsize() == 0


def test_unknown_queue_in_admin(valkey_url: str, redis_client: redis.Redis) -> None:
    rwq("enqueue", "known", "1", url=valkey_url)
    assert_clean_error(
        rwq("admin", "peek", "nope", url=valkey_url), "unknown queue 'nope'", "known"
    )
    assert_clean_error(rwq("admin", "pause", "nope", url=valkey_url), "unknown queue")


def test_wrong_url_and_server_down() -> None:
    assert_clean_error(rwq("admin", "stats", url="foo://x"), "foo://x", "RWQ_REDIS_URL")
    assert_clean_error(
        rwq("admin", "stats", url="redis://127.0.0.1:1"), "redis://127.0.0.1:1", "reach"
    )


def test_destructive_operations_need_yes(valkey_url: str, redis_client: redis.Redis) -> None:
    for i in range(3):
        rwq("enqueue", "q", str(i), url=valkey_url)
    assert_clean_error(rwq("admin", "purge", "q", url=valkey_url, stdin=""), "--yes")
    assert redis_client.zcard("rwq:{rwq:q:q}:pending") == 3
    done = rwq("admin", "purge", "q", "--yes", "--json", url=valkey_url)
    assert json.loads(done.stdout) == {"purged": 3}


def test_read_only_refuses_changes(valkey_url: str, redis_client: redis.Redis) -> None:
    rwq("enqueue", "q", "1", url=valkey_url)
    result = rwq("--read-only", "admin", "purge", "q", "--yes", url=valkey_url)
    assert_clean_error(result, "read-only")
    assert redis_client.zcard("rwq:{rwq:q:q}:pending") == 1


def test_bad_app_for_worker(valkey_url: str) -> None:
    assert_clean_error(
        rwq("worker", "-q", "q", "--app", "no_such_module:x", url=valkey_url), "--app"
    )


@pytest.mark.parametrize("delay", ["soon", "-5s"])
def test_bad_delay(valkey_url: str, delay: str) -> None:
    assert_clean_error(rwq("enqueue", "q", "1", "--delay", delay, url=valkey_url), "--delay")


def test_worker_runs_jobs_from_cli(valkey_url: str, redis_client: redis.Redis) -> None:
    for _ in range(5):
        rwq("enqueue", "q", json.dumps({"duration_ms": 1, "fail_rate": 0}), url=valkey_url)
    result = rwq("worker", "-q", "q", "--app", "demo", "--max-jobs", "5", url=valkey_url)
    assert result.returncode == 0, result.stderr
    stats = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)
    assert stats["queues"][0]["completed_total"] == 5


def test_job_text_is_printed_as_text(valkey_url: str, redis_client: redis.Redis) -> None:
    """Job ids, tenants, errors and payloads are data: markup, emoji codes and escapes in them
    are printed as written (escapes visibly), never interpreted."""
    from rwq.config import Settings
    from rwq.queue.broker import Broker, Failure
    from rwq.queue.producer import Producer

    broker = Broker(redis_client, Settings(redis_url=valkey_url))
    hostile = "[/] [@click=app.quit]x :heart: \x1b[2J\x1b]0;pwn\x07 \u202eevil"
    job = Producer(broker).enqueue("q", {"note": hostile}, tenant=":heart: [bold")
    [taken] = broker.fetch("q", "w-test", 1).jobs
    broker.fail("q", "w-test", [Failure(taken.id, 1.0, hostile, permanent=True)])
    for args in (("admin", "dlq", "list"), ("admin", "peek", "q", "--state", "dead"),
                 ("admin", "stats")):  # fmt: skip
        result = rwq(*args, url=valkey_url)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "\x1b" not in out and "\u202e" not in out and "\u2764" not in out, out
    listed = rwq("admin", "dlq", "list", url=valkey_url).stdout
    assert job.id in listed  # whole, at 80 columns
    assert "[/] [@clic" in listed and ":hear" in listed
    wide = subprocess.run(
        [sys.executable, "-m", "rwq", "admin", "dlq", "list"], capture_output=True, text=True,
        env={**os.environ, "RWQ_REDIS_URL": valkey_url, "COLUMNS": "250"}, timeout=60,
    ).stdout  # fmt: skip
    assert ":heart: [bold" in wide and "[/] [@click=app.quit]x :heart: \\x1b[2J" in wide


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("max_retries: [1]\n", ("rwq.yaml: max_retries: expected a whole number",)),
        ("backoff_max: {}\n", ("rwq.yaml: backoff_max: expected a number of seconds",)),
        ("a:\n" + "- " * 200 + "x\n", ("rwq.yaml: line 2", "nested more than")),
        ("prefix: !!binary x\n", ("rwq.yaml: line 1, column 9", "!!binary cannot read")),
    ],
)
def test_bad_settings_are_one_clean_line(tmp_path: Path, text: str, needles: tuple[str]) -> None:
    (tmp_path / "rwq.yaml").write_text(text)
    result = rwq("--config", str(tmp_path / "rwq.yaml"), "admin", "stats", url=None)
    assert_clean_error(result, *needles)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"prefix: caf\xe9\n")
    assert_clean_error(
        rwq("--config", str(latin), "admin", "stats", url=None), "latin.yaml: not UTF-8 text"
    )
