"""Queue names: what is allowed, and the reserved words of admin commands."""

from __future__ import annotations

import pytest

from rwq.queue.keys import InvalidQueueName, Keys, check_queue_name


@pytest.mark.parametrize("name", ["tenant.acme", "emails", "a", "q:1", "x-y_z"])
def test_valid_names(name: str) -> None:
    assert check_queue_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "has space", "a" * 129, "new\n", "{tag}", "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidQueueName, match="invalid queue name"):
        check_queue_name(name)


@pytest.mark.parametrize("name", ["dead", "all"])
def test_reserved_names(name: str) -> None:
    with pytest.raises(InvalidQueueName, match="reserved"):
        check_queue_name(name)


def test_every_key_of_a_queue_shares_one_hash_tag() -> None:
    qk = Keys("rwq").queue("tenant.acme")
    tag = "{rwq:q:tenant.acme}"
    for key in (qk.pending, qk.scheduled, qk.dead, qk.completed, qk.counters, qk.paused,
                qk.events, qk.job("j1"), qk.processing("w1"), qk.throughput(1)):  # fmt: skip
        assert key.count("{") == 1 and tag in key
