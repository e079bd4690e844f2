"""Dead letters through the host API: ``list_dead`` by queue glob and age, and
``delete_dead``, the atomic deletion of chosen dead letters, on the real server."""

from __future__ import annotations

import pytest
from test_host_api import Host, host  # noqa: F401  (the host API fixture)

from rwq.plugins.contract.errors import HostCallError, InvalidArgument, NotFound, PermissionDenied


def ids(page: dict[str, object]) -> set[str]:
    jobs = page["jobs"]
    assert isinstance(jobs, list)
    return {j["id"] for j in jobs}


def test_list_dead_takes_a_queue_glob(host: Host) -> None:  # noqa: F811
    a, b, other = host.seed("tenant.a"), host.seed("tenant.b"), host.seed("other")
    host.grant("alpha", "admin.queue.peek", queues=("tenant.*",))
    page = host.call("alpha", "list_dead", {"queue": "tenant.*"})
    assert page["total"] == 4 and ids(page) == {*a, *b}
    assert {j["queue"] for j in page["jobs"]} == {"tenant.a", "tenant.b"}
    # A glob that matches no queue is an empty page, not an unknown queue.
    assert host.call("alpha", "list_dead", {"queue": "tenant.zz*"}) == {"total": 0, "jobs": []}
    with pytest.raises(NotFound):
        host.call("alpha", "list_dead", {"queue": "tenant.zz"})
    # A glob reaching past the grant is refused, and so is an exact queue outside it.
    for queue in ("*", "t*", "other"):
        with pytest.raises(PermissionDenied):
            host.call("alpha", "list_dead", {"queue": queue})
    assert other


def test_list_dead_filters_by_age(host: Host) -> None:  # noqa: F811
    old, new = host.seed("q")
    client = host.broker.client
    now_s, _ = client.time()
    # One dead-lettered an hour ago (by the server's clock), the other just now.
    qk = host.broker.queue_keys("q")
    client.hset(qk.job(old), "dead_at", str((now_s - 3600) * 1000))
    client.zadd(qk.dead, {old: (now_s - 3600) * 1000}, xx=True)
    host.grant("alpha", "admin.queue.peek")
    assert ids(host.call("alpha", "list_dead", {"queue": "q", "older_than_s": 600})) == {old}
    assert ids(host.call("alpha", "list_dead", {"queue": "q", "newer_than_s": 600})) == {new}
    both = {"queue": "q", "older_than_s": 60, "newer_than_s": 7200}
    assert ids(host.call("alpha", "list_dead", both)) == {old}
    assert host.call("alpha", "list_dead", {"queue": "q", "older_than_s": 7200})["total"] == 0
    assert host.call("alpha", "list_dead", {"queue": "q"})["total"] == 2
    with pytest.raises(InvalidArgument) as bad:
        host.call("alpha", "list_dead", {"queue": "q", "older_than_s": -1})
    assert bad.value.argument == "older_than_s"


def test_delete_dead_removes_exactly_the_chosen_dead_letters(host: Host) -> None:  # noqa: F811
    dead = host.seed("q")
    host.grant("alpha", "admin.queue.purge", "admin.queue.peek")
    client = host.broker.client
    qk = host.broker.queue_keys("q")
    before = client.zcard(qk.pending)
    result = host.call("alpha", "delete_dead", {"queue": "q", "ids": [dead[0], "nope"]})
    assert result == {"deleted": 1}
    assert client.zrange(qk.dead, 0, -1) == [dead[1]]
    assert not client.exists(qk.job(dead[0]))
    assert client.zcard(qk.pending) == before  # pending jobs untouched
    # A pending job's id is not a dead letter: skipped, the job kept.
    pending_id = client.zrange(qk.pending, 0, 0)[0]
    assert host.call("alpha", "delete_dead", {"queue": "q", "ids": [pending_id]}) == {"deleted": 0}
    assert client.exists(qk.job(pending_id))
    events = [fields for _, fields in client.xrange(qk.events)]
    purged = [(f["target"], f["count"]) for f in events if f["type"] == "queue.purged"]
    assert purged == [("dead", "1")]
    assert host.call("alpha", "list_dead", {"queue": "q"})["total"] == 1


def test_delete_dead_is_checked_refused_read_only_and_validated(host: Host) -> None:  # noqa: F811
    inside, outside = host.seed("tenant.a"), host.seed("other")
    host.grant("alpha", "admin.queue.purge", queues=("tenant.*",))
    with pytest.raises(PermissionDenied) as denied:
        host.call("alpha", "delete_dead", {"queue": "other", "ids": outside})
    assert denied.value.permission == "admin.queue.purge"
    with pytest.raises(InvalidArgument) as empty:
        host.call("alpha", "delete_dead", {"queue": "tenant.a", "ids": []})
    assert empty.value.argument == "ids"
    host.api.read_only = True
    with pytest.raises(HostCallError) as refused:
        host.call("alpha", "delete_dead", {"queue": "tenant.a", "ids": inside})
    assert refused.value.code == "read_only"
    host.api.read_only = False
    client = host.broker.client
    assert client.zcard(host.broker.queue_keys("other").dead) == 2
    assert client.zcard(host.broker.queue_keys("tenant.a").dead) == 2
    assert host.call("alpha", "delete_dead", {"queue": "tenant.a", "ids": inside}) == {"deleted": 2}


def test_list_dead_pages_across_queues_newest_first(host: Host) -> None:  # noqa: F811
    a, b = host.seed("tenant.a"), host.seed("tenant.b")
    client = host.broker.client
    now_s, _ = client.time()
    # Interleave the dead letters' times across the two queues: b[1], a[0], b[0], a[1].
    order = [b[1], a[0], b[0], a[1]]
    for age, job_id in enumerate(order):
        queue = "tenant.a" if job_id in a else "tenant.b"
        qk = host.broker.queue_keys(queue)
        at = (now_s - 60 * (age + 1)) * 1000
        client.hset(qk.job(job_id), "dead_at", str(at))
        client.zadd(qk.dead, {job_id: at}, xx=True)
    host.grant("alpha", "admin.queue.peek")
    pages = [
        host.call("alpha", "list_dead", {"queue": "tenant.*", "offset": o, "limit": 3})
        for o in (0, 3)
    ]
    assert [p["total"] for p in pages] == [4, 4]
    assert [j["id"] for p in pages for j in p["jobs"]] == order
    # The page's jobs are whole: payload, error, times.
    first = pages[0]["jobs"][0]
    assert first["payload"] == {"n": 4} and first["last_error"] == "boom"
    assert first["dead_at"] == (now_s - 60) * 1000
    error_page = host.call("alpha", "list_dead", {"queue": "tenant.*", "error": "BOO", "limit": 2})
    assert error_page["total"] == 4 and [j["id"] for j in error_page["jobs"]] == order[:2]
