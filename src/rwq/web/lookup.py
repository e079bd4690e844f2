"""A job by id across queues: one pipelined read of the job's record in each queue given.

A job id is unique within its queue; the first queue (by name) holding a record of that id
wins. A finished job whose record was trimmed from the history is not found.
"""

from __future__ import annotations

from collections.abc import Sequence

from rwq.queue.broker import Broker
from rwq.queue.job import Job

__all__ = ["find_job"]


def find_job(broker: Broker, job_id: str, queues: Sequence[str]) -> Job | None:
    """The job ``job_id`` of the first of ``queues`` that has it, or None."""
    if not queues:
        return None
    pipe = broker.client.pipeline(transaction=False)
    for queue in queues:
        pipe.hgetall(broker.queue_keys(queue).job(job_id))
    for queue, fields in zip(queues, pipe.execute(), strict=True):
        if fields:
            return Job.from_fields(fields, job_id, queue)
    return None
