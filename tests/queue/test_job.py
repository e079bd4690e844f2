"""Jobs: ids, payload encoding and its limit, option checks, the Redis hash round trip."""

from __future__ import annotations

import math
import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rwq.queue.job import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Job,
    JobError,
    PayloadTooLarge,
    check_priority,
    decode_result,
    encode_payload,
    encode_result,
    new_job_id,
    pending_score,
)


def test_ids_are_unique_and_fixed_width() -> None:
    ids = [new_job_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {26}
    assert all(int(i, 16) >= 0 for i in ids)  # lower-case hex only


def test_ids_sort_in_creation_order_even_within_a_millisecond() -> None:
    ids = [new_job_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert int(ids[0][:12], 16) <= time.time_ns() // 1_000_000


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    new_job_id()  # the parent has a "last id" the child must not count up from
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its ids and leave at once
        os.close(read_end)
        os.write(write_end, " ".join(new_job_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    ours = {new_job_id() for _ in range(100)}
    with os.fdopen(read_end) as pipe:
        theirs = set(pipe.read().split())
    os.waitpid(pid, 0)
    assert len(theirs) == 100
    assert not ours & theirs


def test_pending_score_orders_by_priority_then_time() -> None:
    now = time.time() * 1000
    assert pending_score(9, now + 10_000) < pending_score(8, now)
    assert pending_score(5, now) < pending_score(5, now + 1)
    assert pending_score(MIN_PRIORITY, now) > pending_score(MAX_PRIORITY, now)


@pytest.mark.parametrize("priority", [MIN_PRIORITY, 5, MAX_PRIORITY])
def test_priority_in_range_is_accepted(priority: int) -> None:
    assert check_priority(priority) == priority


@pytest.mark.parametrize("priority", [-1, 10, 2.5, "5", None, True])
def test_priority_out_of_range_or_not_an_int_is_rejected(priority: object) -> None:
    with pytest.raises(JobError, match="priority must be a whole number from 0 to 9"):
        check_priority(priority)  # type: ignore[arg-type]


def test_payload_is_compact_ascii_json() -> None:
    assert encode_payload({"a": [1, 2], "é": "x"}, 100) == '{"a":[1,2],"\\u00e9":"x"}'


@pytest.mark.parametrize("payload", [{1, 2}, math.nan, math.inf, object(), b"bytes"])
def test_payload_that_is_not_json_is_rejected(payload: object) -> None:
    with pytest.raises(JobError, match="payload is not JSON-serialisable"):
        encode_payload(payload, 1000)


def test_payload_over_the_limit_names_size_and_setting() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        encode_payload("x" * 100, 50)
    assert caught.value.size == 102  # the quotes count
    assert caught.value.limit == 50
    assert str(caught.value) == (
        "payload is 102 bytes, over the 50-byte limit (setting payload_limit)"
    )
    assert isinstance(caught.value, JobError)


def test_payload_exactly_at_the_limit_is_accepted() -> None:
    assert encode_payload("x" * 48, 50) == '"' + "x" * 48 + '"'


def test_from_fields_reads_the_stored_hash() -> None:
    fields = {
        "spec": '{"payload":{"n":1},"max_retries":2,"created_at":1000.5,"trace_id":"t1"}',
        "priority": "7",
        "tenant": "acme",
        "attempts": "1",
        "state": "processing",
        "enqueued_at": "1001.250",
        "started_at": "1002.000",
        "worker": "w1",
        "error": "",
    }
    job = Job.from_fields(fields, "id1", "emails")
    assert job == Job(
        id="id1",
        queue="emails",
        payload={"n": 1},
        priority=7,
        tenant="acme",
        attempts=1,
        max_retries=2,
        state="processing",
        created_at=1000.5,
        enqueued_at=1001.25,
        started_at=1002.0,
        trace_id="t1",
        worker="w1",
    )


def test_from_fields_tolerates_a_broken_spec() -> None:
    job = Job.from_fields({"spec": "not json", "priority": "3"}, "id1", "q")
    assert (job.payload, job.priority, job.max_retries) == (None, 3, 0)
    assert Job.from_fields({"spec": "[1]"}, "id2", "q").payload is None


def test_from_flat_pairs_fields_and_values() -> None:
    job = Job.from_flat(["spec", '{"payload":"p"}', "attempts", "2"], "id1", "q")
    assert (job.id, job.payload, job.attempts) == ("id1", "p", 2)


def test_completed_record_carries_its_own_id_and_queue() -> None:
    # The completed history stores the hash plus "id"; peek reads it without a key.
    job = Job.from_fields({"id": "abc", "spec": '{"payload":1,"queue":"q2"}'})
    assert (job.id, job.queue) == ("abc", "q2")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@given(
    payload=json_values,
    priority=st.integers(MIN_PRIORITY, MAX_PRIORITY),
    tenant=st.none() | st.text(min_size=1, max_size=10),
    attempts=st.integers(0, 100),
    max_retries=st.integers(0, 100),
)
def test_to_dict_and_from_fields_round_trip(
    payload: object, priority: int, tenant: str | None, attempts: int, max_retries: int
) -> None:
    job = Job("id1", "q", payload, priority, tenant, attempts, max_retries, created_at=5.0)
    d = job.to_dict()
    spec = encode_payload(
        {"payload": d["payload"], "max_retries": d["max_retries"], "created_at": 5.0}, 10**6
    )
    fields = {
        "spec": spec,
        "priority": str(priority),
        "tenant": tenant or "",
        "attempts": str(attempts),
        "state": "pending",
    }
    assert Job.from_fields(fields, "id1", "q") == job


class _Hostile(dict[str, int]):
    """A return value whose encoding raises, with an error that cannot be shown."""

    def items(self) -> object:  # type: ignore[override]
        class Unprintable(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no")

        raise Unprintable


_results = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=4)
    | st.builds(object) | st.builds(_Hostile),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3)
    | st.frozensets(st.integers(), max_size=2),
    max_leaves=8,
)  # fmt: skip


@pytest.mark.fuzz
@given(value=_results, limit=st.integers(0, 200))
def test_any_return_value_is_kept_or_noted_never_raised(value: object, limit: int) -> None:
    text, note = encode_result(value, limit)
    if value is None:
        assert (text, note) == ("", "")
    elif text:
        assert note == "" and len(text) <= limit and text.isascii()
        assert decode_result(text) is not None or text == "null"
    else:
        assert note.startswith("result not kept: ") and note.isprintable()
