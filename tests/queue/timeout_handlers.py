"""Handlers for the process-isolation tests: module-level, so a worker can send them to its
child processes by name. Each takes its instructions from the job's payload."""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from rwq.queue.job import Job
from rwq.queue.worker import PermanentFailure


def behave(job: Job) -> None:
    """Do what ``job.payload["do"]`` says; write the child's pid to ``payload["pid_file"]``
    first when given."""
    payload = job.payload
    if payload.get("pid_file"):
        Path(payload["pid_file"]).write_text(str(os.getpid()), encoding="utf-8")
    action = payload["do"]
    if action == "spin":
        while True:  # a stuck handler no thread can stop
            pass
    elif action == "sleep":
        time.sleep(payload["seconds"])
    elif action == "exit":
        os._exit(3)
    elif action == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif action == "raise":
        raise ValueError("bad input")
    elif action == "permanent":
        raise PermanentFailure("never works")
