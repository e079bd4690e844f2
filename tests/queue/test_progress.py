"""Job progress: a handler's ``job.progress()`` is stored on the job hash and announced as
``job.progress`` events (at most one a second per job), in thread mode and under process
isolation. Standalone and cluster."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flow_handlers import report_then_wait

from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.events import Event
from rwq.queue.job import Job, JobError
from rwq.queue.job_control import WorkerControl
from rwq.queue.producer import Producer

ReadEvents = Callable[[str], list[Event]]
StartWorker = Callable[..., Any]
WaitUntil = Callable[..., Any]


def _running(admin: Admin, queue: str) -> Job | None:
    jobs = admin.peek(queue, 1, target="processing")
    return jobs[0] if jobs and jobs[0].progress_fraction == 0.4 else None


@pytest.mark.parametrize(
    "options",
    [
        {"isolation": "thread"},
        {"isolation": "thread", "concurrency": 2},
        {"isolation": "thread", "timeout": "60s"},
        {"isolation": "process"},
    ],
    ids=["inline", "threads", "inline-bounded", "process"],
)
def test_progress_is_stored_and_evented(
    producer: Producer, admin: Admin, start_worker: StartWorker, read_events: ReadEvents,
    wait_until: WaitUntil, tmp_path: Path, options: dict[str, Any],
) -> None:  # fmt: skip
    release = tmp_path / "release"
    payload = {"pid_file": str(tmp_path / "pid"), "release": str(release),
               "seen": str(tmp_path / "seen")}  # fmt: skip
    job = producer.enqueue("q", payload, max_retries=0)
    start_worker(["q"], {"*": report_then_wait}, **options)
    running = wait_until(lambda: _running(admin, "q"), what="progress 0.4")
    assert (running.id, running.progress_message) == (job.id, "half")
    assert running.to_dict()["progress"] == 0.4
    release.touch()
    wait_until(lambda: admin.stats(["q"]).queues[0].completed_total == 1, what="completion")
    [done] = admin.peek("q", 1, target="completed")
    assert (done.progress_fraction, done.progress_message) == (1.0, "done")
    reports = [e for e in read_events("q") if e.type == "job.progress"]
    assert all(e.data["job_id"] == job.id and e.data["attempt"] == 1 for e in reports)
    # Five reports: the first is announced, those a moment after it are not, 1.0 is.
    assert reports[0].data["progress"] == 0.1 and reports[0].data["message"] == "step 0.1"
    assert reports[-1].data["progress"] == 1.0 and reports[-1].data["message"] == "done"
    assert len(reports) < 5
    assert reports[-1].data["worker"]


def test_progress_of_a_job_not_held_is_refused(
    broker: Broker, producer: Producer, admin: Admin, read_events: ReadEvents
) -> None:
    job = producer.enqueue("q", 1)
    [pending] = admin.peek("q", 1)
    assert pending.progress(0.5, "outside a worker")  # only the fields
    assert pending.progress_fraction == 0.5
    pending.attach(WorkerControl(broker, "some-worker"))
    assert not pending.progress(0.6, "a worker that does not hold it")
    stored = admin.job("q", job.id)
    assert stored is not None and stored.progress_fraction is None
    assert not [e for e in read_events("q") if e.type == "job.progress"]


@pytest.mark.parametrize(
    ("fraction", "message", "needle"),
    [(1.5, "", "fraction must be a number from 0 to 1"),
     (-0.1, "", "fraction must be"), (float("nan"), "", "fraction must be"),
     (True, "", "fraction must be"), ("half", "", "fraction must be"),
     (0.5, 3, "message must be text")],
)  # fmt: skip
def test_bad_progress_is_refused_by_name(fraction: Any, message: Any, needle: str) -> None:
    with pytest.raises(JobError, match=needle):
        Job("a", "q", None).progress(fraction, message)


def test_a_long_message_is_cut() -> None:
    job = Job("a", "q", None)
    job.progress(1, "x" * 500)
    assert job.progress_fraction == 1.0 and len(job.progress_message or "") == 200
