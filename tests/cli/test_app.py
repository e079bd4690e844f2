"""The command line end to end: real processes against the session's Valkey."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


@pytest.mark.parametrize(
    ("value", "needle"),
    [("0", "more than 0"), ("-5s", "expected a duration"), ("soon", "expected a duration"),
     ("40d", "at most")],
)  # fmt: skip
def test_bad_timeouts_name_the_option(valkey_url: str, value: str, needle: str) -> None:
    assert_clean_error(
        rwq("enqueue", "q", "1", f"--timeout={value}", url=valkey_url), "--timeout", needle
    )
    worker = rwq("worker", "-q", "q", "--app", "rwq.bench.queue:noop", f"--timeout={value}",
                 "--isolation", "process", url=valkey_url)  # fmt: skip
    assert_clean_error(worker, "--timeout", needle)


def test_a_bad_isolation_names_the_option(valkey_url: str) -> None:
    result = rwq("worker", "-q", "q", "--app", "rwq.bench.queue:noop", "--isolation", "fork",
                 url=valkey_url)  # fmt: skip
    assert_clean_error(result, "--isolation", "thread or process", "'fork'")
    result = rwq("worker", "-q", "q", "--app", "rwq.bench.queue:noop", "--child-max-jobs", "5",
                 url=valkey_url)  # fmt: skip
    assert_clean_error(result, "--child-max-jobs", "--isolation process")


def test_a_worker_with_process_isolation_kills_a_handler_past_its_timeout(
    valkey_url: str, redis_client: redis.Redis
) -> None:
    """`rwq enqueue --timeout` and `rwq worker --isolation process --timeout`, end to end."""
    stuck = rwq("enqueue", "q", '{"do": "spin"}', "--timeout", "300ms", "--max-retries", "0",
                "--json", url=valkey_url)  # fmt: skip
    assert stuck.returncode == 0, stuck.stderr
    assert json.loads(stuck.stdout)["timeout"] == 0.3
    rwq("enqueue", "q", '{"do": "sleep", "seconds": 0.5}', "--max-retries", "0", url=valkey_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env["RWQ_REDIS_URL"] = valkey_url
    worker = subprocess.run(
        [sys.executable, "-m", "rwq", "worker", "-q", "q", "--app", "timeout_handlers:behave",
         "--isolation", "process", "--timeout", "100ms", "--max-jobs", "2"],
        capture_output=True, text=True, env=env, timeout=60,
        cwd=Path(__file__).parents[1] / "queue",
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert "0 completed, 2 failed" in worker.stderr
    dead = json.loads(rwq("admin", "peek", "q", "--state", "dead", "--json", url=valkey_url).stdout)
    errors = sorted(job["last_error"] for job in dead)
    assert errors == [
        "JobTimeout: the handler ran past its timeout of 100ms (its process was killed)",
        "JobTimeout: the handler ran past its timeout of 300ms (its process was killed)",
    ]


def test_worker_runs_jobs_from_cli(valkey_url: str, redis_client: redis.Redis) -> None:
    for _ in range(5):
        rwq("enqueue", "q", json.dumps({"duration_ms": 1, "fail_rate": 0}), url=valkey_url)
    result = rwq(
        "worker",
        "-q",
        "q",
        "--app",
        "rwq.demo.workload:handlers",
        "--max-jobs",
        "5",
        url=valkey_url,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)
    assert stats["queues"][0]["completed_total"] == 5


def test_a_worker_needs_its_handlers_named(valkey_url: str, redis_client: redis.Redis) -> None:
    """Without --app a worker once ran the demo's handlers and "completed" real jobs."""
    rwq("enqueue", "invoices", "{}", url=valkey_url)
    missing = rwq("worker", "-q", "invoices", "--max-jobs", "1", url=valkey_url)
    assert missing.returncode == 2 and "--app" in missing.stderr
    demo = rwq("worker", "-q", "invoices", "--app", "demo", "--max-jobs", "1", url=valkey_url)
    assert_clean_error(demo, "--app", "rwq.demo.workload:handlers")
    stats = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)
    assert stats["queues"][0]["pending"] == 1 and stats["queues"][0]["completed_total"] == 0


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
        ("prefix: !!binary x\n", ("rwq.yaml: line 1, column 9", "invalid YAML")),
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


HANGING_APP = """
import time
from pathlib import Path

def handle(job):
    Path(job.payload["started"]).write_text("x")
    while True:
        time.sleep(0.05)
"""
QUICK_APP = """
import time
from pathlib import Path

def handle(job):
    Path(job.payload["started"]).write_text("x")
    time.sleep(0.5)
"""


def start_worker(
    tmp_path: Path, url: str, source: str, *extra: str, timeout: str = "1"
) -> subprocess.Popen[str]:
    (tmp_path / "jobs_app.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env.update(RWQ_REDIS_URL=url, RWQ_SHUTDOWN_TIMEOUT=timeout, PYTHONPATH=str(tmp_path))
    return subprocess.Popen(
        [sys.executable, "-m", "rwq", "worker", "-q", "q", "--app", "jobs_app:handle", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_sigterm_stops_a_worker_whose_handler_hangs(
    valkey_url: str, redis_client: redis.Redis, tmp_path: Path, concurrency: str
) -> None:
    """A hung handler held its job forever and SIGTERM never stopped the worker: now the job
    goes back to its queue after shutdown_timeout and the process exits (status 3)."""
    started = tmp_path / "started"
    job = json.loads(rwq("enqueue", "q", json.dumps({"started": str(started)}), "--json",
                         url=valkey_url).stdout)  # fmt: skip
    worker = start_worker(tmp_path, valkey_url, HANGING_APP, "--concurrency", concurrency)
    wait_for(started)
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 3, stderr
    assert time.monotonic() - sent < 10
    assert "go back to their queues" in stderr
    [queue] = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)["queues"]
    assert (queue["pending"], queue["processing"], queue["completed_total"]) == (1, 0, 0)
    [back] = json.loads(rwq("admin", "peek", "q", "--json", url=valkey_url).stdout)
    assert back["id"] == job["id"]
    assert json.loads(rwq("admin", "workers", "--json", url=valkey_url).stdout) == []


def test_sigterm_lets_a_running_job_finish_within_the_timeout(
    valkey_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    rwq("enqueue", "q", json.dumps({"started": str(started)}), url=valkey_url)
    worker = start_worker(tmp_path, valkey_url, QUICK_APP, timeout="30")
    wait_for(started)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    [queue] = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)["queues"]
    assert (queue["pending"], queue["completed_total"]) == (0, 1)


def test_a_second_signal_hands_the_jobs_back_at_once(
    valkey_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    rwq("enqueue", "q", json.dumps({"started": str(started)}), url=valkey_url)
    worker = start_worker(tmp_path, valkey_url, HANGING_APP, timeout="600")
    wait_for(started)
    worker.send_signal(signal.SIGINT)
    time.sleep(0.3)
    worker.send_signal(signal.SIGINT)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 3, stderr
    [queue] = json.loads(rwq("admin", "stats", "--json", url=valkey_url).stdout)["queues"]
    assert (queue["pending"], queue["processing"]) == (1, 0)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--delay", "3660d"), "ten years"),
        (("--at", "2100-01-01T00:00:00"), "ten years"),
        (("--at", "1e300"), "ten years"),
        (("--at", "nan"), "at"),
    ],
)
def test_far_future_times_are_refused(valkey_url: str, args: tuple[str, str], needle: str) -> None:
    assert_clean_error(rwq("enqueue", "q", "1", *args, url=valkey_url), needle)


def test_requeue_names_the_ids_it_did_not_find(valkey_url: str, redis_client: redis.Redis) -> None:
    """`requeue UNKNOWN_ID` said "requeued 0 job(s)" and exited 0."""
    unknown = rwq("admin", "requeue", "nope-1", "nope-2", url=valkey_url)
    assert unknown.returncode == 1
    assert "requeued 0 job(s)" in unknown.stdout
    assert "no dead letter with id nope-1, nope-2" in unknown.stderr
    from rwq.config import Settings
    from rwq.queue.broker import Broker, Failure
    from rwq.queue.producer import Producer

    broker = Broker(redis_client, Settings(redis_url=valkey_url))
    job = Producer(broker).enqueue("q", 1)
    [taken] = broker.fetch("q", "w", 1).jobs
    broker.fail("q", "w", [Failure(taken.id, 1.0, "boom", permanent=True)])
    mixed = rwq("admin", "requeue", job.id, "nope-3", "--json", url=valkey_url)
    assert mixed.returncode == 1
    assert json.loads(mixed.stdout) == {"requeued": 1, "not_found": ["nope-3"]}


def test_peek_names_the_option_and_says_when_there_is_nothing(valkey_url: str) -> None:
    assert_clean_error(rwq("admin", "peek", "q", "--state", "bogus", url=valkey_url),
                       "--state: must be one of pending")  # fmt: skip
    rwq("enqueue", "q", "1", url=valkey_url)
    empty = rwq("admin", "peek", "q", "--state", "processing", url=valkey_url)
    assert empty.returncode == 0 and empty.stdout.strip() == "no processing jobs on q"
    none = rwq("admin", "dlq", "list", url=valkey_url)
    assert none.stdout.strip() == "no dead letters match"


def test_enqueue_json_has_the_servers_enqueued_at(valkey_url: str) -> None:
    job = json.loads(rwq("enqueue", "q", "1", "--json", url=valkey_url).stdout)
    assert job["enqueued_at"] is not None and abs(job["enqueued_at"] - time.time() * 1000) < 60_000


def test_bench_prints_text_for_people_and_json_only_when_asked() -> None:
    """`rwq bench plugins` printed JSON without --json."""
    text = rwq("bench", "queue", "--jobs", "200", url=None)
    assert text.returncode == 0, text.stderr
    assert "process_jobs_per_s: " in text.stdout
    assert "fsync_always:\n  enqueue_jobs_per_s: " in text.stdout  # the durability figures
    assert "process_async_jobs_per_s: " in text.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.stdout)
    from rwq.cli.bench import _print_figures, out

    with out.capture() as captured:
        _print_figures({"checks": {"ops_per_s": 123456.7, "p99_us": 1.25}, "runs": 3})
    assert captured.get() == "checks:\n  ops_per_s: 123,457\n  p99_us: 1.250\nruns: 3\n"


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (("enqueue", "q", "[" * 5000), None, "nested too deeply"),
        (("enqueue", "q", "-"), "\udcff\udcfe", "not UTF-8 text"),
        (("enqueue", "q", "{}", "--tenant", "\udcff"), None, "--tenant: not UTF-8 text"),
        (("worker", "-q", "q", "--app", "broken_app:handle"), None, "importing 'broken_app'"),
    ],
)
def test_odd_command_line_input_is_one_clean_line(
    valkey_url: str, tmp_path: Path, args: tuple[str, ...], stdin: str | None, needle: str
) -> None:
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('boom at import')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env.update(RWQ_REDIS_URL=valkey_url, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "rwq", *(os.fsencode(a) for a in args)], capture_output=True,
        env=env, cwd=tmp_path, timeout=60,
        input=stdin.encode("utf-8", "surrogateescape") if stdin is not None else None,
    )  # fmt: skip
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert needle in stderr


def test_settings_that_cannot_be_used_are_one_clean_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for env, needle in (
        ({"RWQ_STATE_DIR": str(tmp_path / "file")}, "cannot hold the embedded Valkey"),
        ({"RWQ_REDIS_URL": "redis://127.0.0.1:1/?socket_timeout=abc"}, "bad parameter"),
        ({"RWQ_REDIS_URL": "redis://127.0.0.1:1/?password=hunter2"}, "password=***"),
    ):
        result = subprocess.run([sys.executable, "-m", "rwq", "admin", "stats"],
                                capture_output=True, text=True, timeout=60,
                                env={**{k: v for k, v in os.environ.items()
                                        if not k.startswith("RWQ_")}, **env})  # fmt: skip
        assert_clean_error(result, needle)
        assert "hunter2" not in result.stderr


def test_a_worker_loads_async_handlers_beside_sync_ones(
    valkey_url: str, redis_client: redis.Redis
) -> None:
    """`--app` takes a mapping where some handlers are `async def`: each job goes to its own."""
    for _ in range(3):
        rwq("enqueue", "async", '{"do": "sleep", "seconds": 0}', url=valkey_url)
        rwq("enqueue", "sync", "{}", url=valkey_url)
    rwq("enqueue", "async", '{"do": "raise"}', "--max-retries", "0", url=valkey_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env["RWQ_REDIS_URL"] = valkey_url
    worker = subprocess.run(
        [sys.executable, "-m", "rwq", "worker", "-q", "async", "-q", "sync", "--app",
         "async_handlers:handlers", "--concurrency", "4", "--max-jobs", "7"],
        capture_output=True, text=True, env=env, timeout=60,
        cwd=Path(__file__).parents[1] / "queue",
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert "6 completed, 1 failed" in worker.stderr
    dead = json.loads(
        rwq("admin", "peek", "async", "--state", "dead", "--json", url=valkey_url).stdout
    )
    assert [job["last_error"] for job in dead] == ["ValueError: bad input"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("enqueue", "q", "1", "--priority", "12"), "'--priority' / '-p': Input should be less"),
        (("enqueue", "q", "1", "--max-retries", "-1"), "'--max-retries'"),
        (("admin", "peek", "q", "-n", "-1"), "'-n'"),
        (("enqueue",), "Missing argument 'queue'"),
        (("no-such-command",), "No such command 'no-such-command'"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_argument(
    valkey_url: str, args: tuple[str, ...], needle: str
) -> None:
    """Click's framed box spanned lines (and wrapped the limit onto a line of its own)."""
    result = rwq(*args, url=valkey_url)
    assert_clean_error(result, "error: ", needle, "--help')")
    assert result.returncode == 2
