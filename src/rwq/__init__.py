"""rwq: a reliable Redis work queue whose terminal UI is a sandboxed plugin platform."""

from __future__ import annotations

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker
from rwq.queue.handle import (
    JobCancelled,
    JobFailed,
    JobHandle,
    JobNotFound,
    ResultNotKept,
    WaitTimeout,
)
from rwq.queue.job import Job
from rwq.queue.producer import DuplicateJob, JobSpec, Producer
from rwq.queue.scheduler import Scheduler
from rwq.queue.schedules import ScheduleStore
from rwq.queue.worker import Isolation, PermanentFailure, Worker, WorkerOptions
from rwq.schedule_spec import ScheduleSpec

__version__ = "0.1.0"

__all__ = [
    "Admin",
    "Broker",
    "DuplicateJob",
    "Isolation",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "JobSpec",
    "PermanentFailure",
    "Producer",
    "ResultNotKept",
    "RwqError",
    "ScheduleSpec",
    "ScheduleStore",
    "Scheduler",
    "Settings",
    "WaitTimeout",
    "Worker",
    "WorkerOptions",
    "__version__",
]
