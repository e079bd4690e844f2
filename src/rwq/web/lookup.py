"""A job by id across queues: one pipelined read of the job's record in each queue given.

A job id is unique within its queue; the first queue (by name) holding a record of that id
wins. A completed job is found while it is kept (``result_ttl``), with its result. The lookup
is the queue's own (:func:`rwq.queue.handle.find_job`, also behind ``rwq admin job``).
"""

from __future__ import annotations

from rwq.queue.handle import find_job

__all__ = ["find_job"]
