"""Queue invariants under random operation sequences (hypothesis, stateful).

Whatever happens — enqueues, duplicates, fetches, completions, failures, stale results,
lost workers, shutdowns, requeues within and across queues — every job is in exactly one
place, its hash agrees with that place, and the counters add up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rwq.config import Settings
from rwq.queue.admin import Admin
from rwq.queue.broker import Broker, Failure
from rwq.queue.producer import JobSpec, Producer

QUEUES = ("q", "r")
WORKERS = ("w1", "w2")
queues = st.sampled_from(QUEUES)
workers = st.sampled_from(WORKERS)


class QueueMachine(RuleBasedStateMachine):
    client: redis.Redis
    base: Settings

    def __init__(self) -> None:
        super().__init__()
        self.client.flushall()
        self.broker = Broker(self.client, self.base.replace(backoff_base=0.0))
        self.producer = Producer(self.broker)
        self.admin = Admin(self.broker)
        self.ids: set[str] = set()
        self.completed: set[str] = set()
        self.serial = 0
        self._snap: Snapshot | None = None

    @initialize()
    def register_queues(self) -> None:
        self.broker.register_queues(QUEUES)

    # -- operations -------------------------------------------------------------------------

    @rule(
        queue=queues,
        n=st.integers(1, 3),
        delayed=st.booleans(),
        max_retries=st.integers(0, 2),
    )
    def enqueue(self, queue: str, n: int, delayed: bool, max_retries: int) -> None:
        specs = []
        for _ in range(n):
            self.serial += 1
            specs.append(
                JobSpec(
                    self.serial,
                    delay=60 if delayed else None,
                    max_retries=max_retries,
                    job_id=f"j{self.serial}",
                )
            )
        jobs = self.producer.enqueue_many(queue, specs)
        assert {j.state for j in jobs} == {"scheduled" if delayed else "pending"}
        self.ids.update(j.id for j in jobs)

    @precondition(lambda self: self.ids - self.completed)
    @rule(data=st.data())
    def enqueue_a_duplicate(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.ids - self.completed)))
        queue = self._queue_of(job_id)
        job = self.producer.enqueue(queue, "again", job_id=job_id)
        assert job.state == "duplicate"

    @rule(queue=queues, worker=workers, count=st.integers(1, 3))
    def fetch(self, queue: str, worker: str, count: int) -> None:
        fetched = self.broker.fetch(queue, worker, count)
        for job in fetched.jobs:
            assert job.state == "processing" and job.worker == worker

    @precondition(lambda self: self._all_held())
    @rule(data=st.data(), stale=st.booleans())
    def complete(self, data: st.DataObject, stale: bool) -> None:
        queue, worker, job_id = data.draw(st.sampled_from(self._all_held()))
        if stale:  # a result from a worker that does not hold the job
            worker = next(w for w in WORKERS if w != worker)
        assert self.broker.complete(queue, worker, [(job_id, 1.0)]) == [0 if stale else 1]
        if not stale:
            self.completed.add(job_id)

    @precondition(lambda self: self._all_held())
    @rule(data=st.data(), permanent=st.booleans())
    def fail(self, data: st.DataObject, permanent: bool) -> None:
        queue, worker, job_id = data.draw(st.sampled_from(self._all_held()))
        attempts = int(self.client.hget(self.broker.queue_keys(queue).job(job_id), "attempts"))
        retries = self.admin.job(queue, job_id).max_retries  # type: ignore[union-attr]
        (outcome,) = self.broker.fail(
            queue, worker, [Failure(job_id, 1.0, "E: x", "tb", 0, permanent)]
        )
        assert outcome == ("dead" if permanent or attempts > retries else "retried")

    @precondition(lambda self: self._all_held())
    @rule(data=st.data(), reason=st.sampled_from(["worker_lost", "shutdown"]))
    def release(self, data: st.DataObject, reason: str) -> None:
        queue, worker, _ = data.draw(st.sampled_from(self._all_held()))
        held = self._held(queue, worker)
        requeued, dead = self.broker.release(queue, worker, reason, "lost")
        assert requeued + dead == len(held)
        if reason == "shutdown":
            assert dead == 0

    @precondition(lambda self: self._all_dead())
    @rule(data=st.data(), to=st.sampled_from([None, *QUEUES]), other=st.booleans())
    def requeue(self, data: st.DataObject, to: str | None, other: bool) -> None:
        dead = data.draw(st.lists(st.sampled_from(self._all_dead()), min_size=1, unique=True))
        ids = list(dead)
        if other:  # an id that is not dead is skipped
            ids += sorted(self.ids - set(self._all_dead()))[:1]
        assert self.admin.requeue(ids, to=to) == len(dead)

    @precondition(lambda self: self._all_dead())
    @rule(to=st.sampled_from([None, *QUEUES]))
    def requeue_all(self, to: str | None) -> None:
        dead = len(self._all_dead())
        assert self.admin.requeue(all_jobs=True, to=to) == dead

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def every_job_is_in_exactly_one_place_and_counters_add_up(self) -> None:
        self._snap = None  # runs after every operation: read afresh, reuse until the next
        snap = self._snapshot()
        where: dict[str, list[tuple[str, str]]] = {}
        for (queue, place), ids in snap.places.items():
            for job_id in ids:
                where.setdefault(job_id, []).append((queue, place))
        assert set(where) == self.ids
        for job_id, found in where.items():
            assert len(found) == 1, f"{job_id} is in {found}"
        for queue in QUEUES:
            live = {i for (q, p), ids in snap.places.items() if q == queue and p != "completed"
                    for i in ids}  # fmt: skip
            states = snap.states[queue]
            hashes = {i for i, state in states.items() if state != "completed"}
            assert hashes == live, f"{queue}: stray hashes {hashes - live}, lost {live - hashes}"
            kept = {i for i, state in states.items() if state == "completed"}  # result_ttl
            assert kept == set(snap.places[queue, "completed"])
        for (queue, place), ids in snap.places.items():
            expected = "processing" if place.startswith("processing") else place
            for job_id in ids:
                if place != "completed":
                    assert snap.states[queue][job_id] == expected, f"{job_id} in {place}"

        completed = [i for (_, p), ids in snap.places.items() if p == "completed" for i in ids]
        assert sorted(completed) == sorted(self.completed)
        totals = {
            name: sum(int(c.get(name, 0)) for c in snap.counters.values())
            for name in ("enqueued", "processed", "dead")
        }
        assert totals["enqueued"] == len(self.ids)
        assert totals["processed"] == len(self.completed)
        dead_now = sum(len(ids) for (_, p), ids in snap.places.items() if p == "dead")
        assert dead_now <= totals["dead"]

    # -- helpers ----------------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        """Every place of every queue, the job hashes' states and the counters, read in one
        round trip (or three); cached until the invariant reads it afresh."""
        if self._snap is not None:
            return self._snap
        pipe = self.client.pipeline(transaction=False)
        for queue in QUEUES:
            qk = self.broker.queue_keys(queue)
            pipe.zrange(qk.pending, 0, -1)
            pipe.zrange(qk.scheduled, 0, -1)
            pipe.zrange(qk.dead, 0, -1)
            pipe.lrange(qk.completed, 0, -1)
            for worker in WORKERS:
                pipe.zrange(qk.processing(worker), 0, -1)
            pipe.hgetall(qk.counters)
        replies = iter(pipe.execute())
        snap = Snapshot({}, {}, {})
        for queue in QUEUES:
            for place in ("pending", "scheduled", "dead"):
                snap.places[queue, place] = next(replies)
            snap.places[queue, "completed"] = [json.loads(r)["id"] for r in next(replies)]
            for worker in WORKERS:
                snap.places[queue, f"processing:{worker}"] = next(replies)
            snap.counters[queue] = next(replies)
        pipe = self.client.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.keys(self.broker.queue_keys(queue).job_prefix + "*")
        job_keys = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for keys in job_keys:
            for key in keys:
                pipe.hget(key, "state")
        states = iter(pipe.execute())
        for queue, keys in zip(QUEUES, job_keys, strict=True):
            prefix = self.broker.queue_keys(queue).job_prefix
            snap.states[queue] = {k.removeprefix(prefix): next(states) for k in keys}
        self._snap = snap
        return snap

    def _place(self, job_id: str) -> tuple[str, str]:
        for (queue, place), ids in self._snapshot().places.items():
            if job_id in ids:
                return queue, place
        raise AssertionError(f"{job_id} is nowhere")

    def _queue_of(self, job_id: str) -> str:
        return self._place(job_id)[0]

    def _all_held(self) -> list[tuple[str, str, str]]:
        return [
            (q, p.removeprefix("processing:"), i)
            for (q, p), ids in self._snapshot().places.items()
            if p.startswith("processing:")
            for i in ids
        ]

    def _all_dead(self) -> list[str]:
        return [i for (_, p), ids in self._snapshot().places.items() if p == "dead" for i in ids]

    def _held(self, queue: str, worker: str) -> set[str]:
        return set(self._snapshot().places[queue, f"processing:{worker}"])


@dataclass
class Snapshot:
    places: dict[tuple[str, str], list[str]]
    """(queue, place) -> job ids; places: pending, scheduled, dead, completed, processing:<w>."""
    states: dict[str, dict[str, str]]
    """queue -> job id -> the ``state`` field of every job hash that exists."""
    counters: dict[str, dict[str, str]]


def test_queue_invariants_hold_under_random_operations(
    redis_client: redis.Redis, settings: Settings
) -> None:
    machine: Any = type("Machine", (QueueMachine,), {"client": redis_client, "base": settings})
    run_state_machine_as_test(
        machine,
        settings=hypothesis_settings(
            max_examples=50,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
