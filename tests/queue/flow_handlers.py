"""Handlers for the progress and cancel tests: module-level, so a worker can send them to its
child processes by name. Each takes its instructions from the job's payload."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rwq.queue.job import Job


def report_then_wait(job: Job) -> None:
    """Report progress in quick steps, then 0.4 ``half``; wait for ``payload["release"]`` to
    exist (or the job to be cancelled); then report 1.0 ``done``. Writes its pid to
    ``payload["pid_file"]`` first and, when cancelled, ``cancelled`` to ``payload["seen"]``."""
    payload = job.payload
    Path(payload["pid_file"]).write_text(str(os.getpid()), encoding="utf-8")
    for step in (0.1, 0.2, 0.3):
        job.progress(step, f"step {step}")
    job.progress(0.4, "half")
    release = Path(payload["release"])
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        if job.cancelled:
            Path(payload["seen"]).write_text("cancelled", encoding="utf-8")
            return
        time.sleep(0.01)
    job.progress(1.0, "done")
