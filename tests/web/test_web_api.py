"""Each route of the admin API against a real server: what it answers, and its 404 and 422."""

from __future__ import annotations

import pytest

from rwq.queue.broker import Broker
from rwq.queue.producer import Producer
from rwq.web.server import WebServer
from web_fixtures import Api, ErrorOf, Kill, MakeToken

EVERYTHING = ("observer", "operator", "administrator", "system", "admin.queue.peek",
              "admin.queue.requeue", "admin.queue.purge", "system.config.read")  # fmt: skip


@pytest.fixture
def root(make_token: MakeToken, api: Api) -> object:
    """A client holding every permission on every queue."""
    return api(make_token("root", *EVERYTHING))


def test_queues_lists_every_queue_with_its_stats(root, producer: Producer) -> None:
    producer.enqueue("mail", {"to": "a"})
    producer.enqueue("video", 1, delay=60)
    body = root.get("/api/v1/queues").json()
    assert [q["queue"] for q in body["queues"]] == ["mail", "video"]
    mail, video = body["queues"]
    assert (mail["pending"], video["scheduled"], body["workers"]) == (1, 1, 0)
    one = root.get("/api/v1/queues/video").json()
    assert (one["queue"], one["scheduled"], one["paused"]) == ("video", 1, False)


def test_an_unknown_queue_is_a_404_naming_it(root, producer: Producer, error_of: ErrorOf) -> None:
    producer.enqueue("mail", 1)
    for path in ("/api/v1/queues/nope", "/api/v1/queues/nope/jobs"):
        error = error_of(root.get(path), 404)
        assert (error["code"], error["queue"]) == ("unknown_queue", "nope")
        assert "'nope'" in error["message"] and "mail" in error["message"]
    error = error_of(root.post("/api/v1/queues/nope/pause"), 404)
    assert error["code"] == "unknown_queue"


def test_peek_shows_the_jobs_of_a_state(root, producer: Producer, kill: Kill) -> None:
    jobs = producer.enqueue_many("mail", [1, 2, 3])
    kill("mail", [jobs[0]])
    pending = root.get("/api/v1/queues/mail/jobs", params={"limit": 1}).json()
    assert (pending["state"], [j["id"] for j in pending["jobs"]]) == ("pending", [jobs[1].id])
    dead = root.get("/api/v1/queues/mail/jobs", params={"state": "dead"}).json()
    assert [(j["id"], j["last_error"]) for j in dead["jobs"]] == [(jobs[0].id, "boom")]


@pytest.mark.parametrize(
    ("params", "argument"),
    [({"state": "sleeping"}, "state"), ({"limit": 0}, "limit"), ({"limit": "x"}, "limit")],
)
def test_a_bad_parameter_is_a_422_naming_it(
    root, producer: Producer, error_of: ErrorOf, params: dict[str, object], argument: str
) -> None:
    producer.enqueue("mail", 1)
    error = error_of(root.get("/api/v1/queues/mail/jobs", params=params), 422)
    assert (error["code"], error["argument"]) == ("invalid_argument", argument)
    assert repr(argument) in error["message"]


def test_a_job_is_found_by_id_in_any_queue(root, producer: Producer, error_of: ErrorOf) -> None:
    producer.enqueue("a", 1)
    job = producer.enqueue("b", {"n": 2})
    body = root.get(f"/api/v1/jobs/{job.id}").json()
    assert (body["id"], body["queue"], body["payload"]) == (job.id, "b", {"n": 2})
    error = error_of(root.get("/api/v1/jobs/no-such-job"), 404)
    assert (error["code"], error["argument"]) == ("not_found", "job_id")
    assert error_of(root.get("/api/v1/jobs/bad%20id"), 422)["argument"] == "job_id"


def test_a_completed_job_is_found_with_its_result_while_kept(
    root, producer: Producer, broker: Broker
) -> None:
    job = producer.enqueue("q", 1)
    (taken,) = broker.fetch("q", "w1", 1).jobs
    broker.complete("q", "w1", [(taken.id, 1.0, taken.attempts, '{"sum":3}', "", -1)])
    body = root.get(f"/api/v1/jobs/{job.id}").json()
    assert (body["state"], body["result"], body["result_error"]) == ("completed", {"sum": 3}, None)


def test_dead_letters_take_the_tuis_filters(root, producer: Producer, kill: Kill) -> None:
    a = producer.enqueue_many("tenant.a", [1, 2])
    b = producer.enqueue("tenant.b", 3, tenant="acme")
    kill("tenant.a", a, error="KeyError: x")
    kill("tenant.b", [b], error="timeout")

    def ids(**params: object) -> set[str]:
        body = root.get("/api/v1/dead-letters", params=params).json()
        assert body["total"] == len(body["jobs"])
        return {j["id"] for j in body["jobs"]}

    assert ids() == {a[0].id, a[1].id, b.id}
    assert ids(queue="tenant.*", tenant="acme") == {b.id}
    assert ids(error="keyerror") == {a[0].id, a[1].id}
    page = root.get("/api/v1/dead-letters", params={"limit": 1, "offset": 1}).json()
    assert (page["total"], len(page["jobs"]), page["offset"]) == (3, 1, 1)


def test_requeue_by_ids_by_filter_and_to_another_queue(
    root, producer: Producer, kill: Kill, error_of: ErrorOf
) -> None:
    jobs = producer.enqueue_many("q", [1, 2, 3])
    kill("q", jobs[:2], error="boom")
    kill("q", [jobs[2]], error="other")
    done = root.post("/api/v1/dead-letters/requeue", json={"ids": [jobs[0].id]})
    assert done.json() == {"requeued": 1}
    done = root.post(
        "/api/v1/dead-letters/requeue", json={"all": True, "error": "other", "to": "elsewhere"}
    )
    assert done.json() == {"requeued": 1}
    moved = root.get("/api/v1/queues/elsewhere/jobs").json()["jobs"]
    assert [j["id"] for j in moved] == [jobs[2].id]
    assert root.post("/api/v1/dead-letters/requeue", json={"all": True}).json() == {"requeued": 1}
    error = error_of(root.post("/api/v1/dead-letters/requeue", json={}), 400)
    assert (error["code"], error["argument"]) == ("bad_argument", "ids")
    error = error_of(
        root.post("/api/v1/dead-letters/requeue", json={"ids": ["x"], "tenant": "t"}), 400
    )
    assert error["argument"] == "tenant"
    error = error_of(root.post("/api/v1/dead-letters/requeue", json={"ids": "x"}), 422)
    assert error["argument"] == "ids"


def test_purge_a_target_of_a_queue(root, producer: Producer, kill: Kill, error_of: ErrorOf) -> None:
    producer.enqueue_many("q", [1, 2])
    dead = producer.enqueue("q", 3, priority=9)
    kill("q", [dead])
    answer = root.post("/api/v1/queues/q/purge", json={"target": "dead"}).json()
    assert answer == {"queue": "q", "target": "dead", "purged": 1}
    assert root.post("/api/v1/queues/q/purge", json={"target": "pending"}).json()["purged"] == 2
    error = error_of(root.post("/api/v1/queues/q/purge", json={"target": "everything"}), 422)
    assert error["argument"] == "target"
    assert error_of(root.post("/api/v1/queues/q/purge"), 422)["code"] == "invalid_argument"


def test_pause_and_resume(root, producer: Producer) -> None:
    producer.enqueue("q", 1)
    assert root.post("/api/v1/queues/q/pause").json() == {
        "queue": "q", "paused": True, "changed": True
    }  # fmt: skip
    assert root.post("/api/v1/queues/q/pause").json()["changed"] is False
    assert root.get("/api/v1/queues/q").json()["paused"] is True
    assert root.post("/api/v1/queues/q/resume").json() == {
        "queue": "q", "paused": False, "changed": True
    }  # fmt: skip


def test_workers_are_listed(root, broker: Broker) -> None:
    broker.client.hset(
        broker.keys.workers, "w1", '{"host": "h", "pid": 7, "queues": ["q"], "concurrency": 2}'
    )
    (worker,) = root.get("/api/v1/workers").json()["workers"]
    assert (worker["id"], worker["pid"], worker["alive"], worker["state"]) == (
        "w1",
        7,
        False,
        "lost",
    )


def test_the_audit_log_holds_the_api_calls(root, web: WebServer, producer: Producer) -> None:
    producer.enqueue("q", 1)
    root.get("/api/v1/queues/q")
    records = root.get("/api/v1/audit", params={"actor": "token:root"}).json()["records"]
    stats = [r for r in records if r["operation"].startswith("admin.stats.read:")]
    assert stats[-1]["operation"] == "admin.stats.read:GET /api/v1/queues/{queue}"
    assert (stats[-1]["resource"], stats[-1]["allowed"]) == ("q", True)


def test_an_unknown_route_is_a_json_404(api: Api, error_of: ErrorOf) -> None:
    assert error_of(api().get("/nowhere"), 404)["code"] == "not_found"
    assert error_of(api().delete("/api/v1/queues"), 405)["code"] == "method_not_allowed"


def test_throughput_per_second_for_charts(root, producer: Producer, error_of: ErrorOf) -> None:
    producer.enqueue("q", 1)
    body = root.get("/api/v1/queues/q/throughput", params={"seconds": 30}).json()
    assert (body["queue"], body["seconds"]) == ("q", 30)
    assert len(body["completed"]) == len(body["failed"]) == 30
    error = error_of(root.get("/api/v1/queues/q/throughput", params={"seconds": 0}), 422)
    assert error["argument"] == "seconds"


def test_delete_chosen_dead_letters(
    root, producer: Producer, kill: Kill, error_of: ErrorOf
) -> None:
    jobs = producer.enqueue_many("q", [1, 2, 3])
    kill("q", jobs)
    deleted = root.post(
        "/api/v1/dead-letters/delete", json={"queue": "q", "ids": [jobs[0].id, "gone"]}
    )
    assert deleted.json() == {"deleted": 1}
    assert root.get("/api/v1/queues/q").json()["dead"] == 2
    error = error_of(root.post("/api/v1/dead-letters/delete", json={"queue": "q", "ids": []}), 422)
    assert error["argument"] == "ids"
    missing = root.post("/api/v1/dead-letters/delete", json={"queue": "nope", "ids": ["x"]})
    assert error_of(missing, 404)["code"] == "unknown_queue"


def test_a_body_that_is_not_json_is_named(root, error_of: ErrorOf) -> None:
    broken = root.post(
        "/api/v1/queues/q/purge",
        content=b'{"target": "dead"',
        headers={"Content-Type": "application/json"},
    )
    error = error_of(broken, 422)
    assert error["argument"] == "body"
    assert error["message"].startswith("the body is not valid JSON")


def test_enqueue_a_job(root, broker: Broker, error_of: ErrorOf) -> None:
    created = root.post("/api/v1/queues/mail/jobs", json={"payload": {"to": "a"}, "priority": 7})
    assert created.status_code == 201
    job = created.json()
    assert (job["queue"], job["payload"], job["priority"], job["state"]) == (
        "mail", {"to": "a"}, 7, "pending"
    )  # fmt: skip
    assert job["enqueued_at"] >= job["created_at"]  # as stored: the server's time
    assert root.get(f"/api/v1/jobs/{job['id']}").json()["payload"] == {"to": "a"}
    later = root.post("/api/v1/queues/mail/jobs", json={"payload": 1, "delay": "5m"}).json()
    assert later["state"] == "scheduled" and later["run_at"] > job["created_at"] + 290_000

    again = {"payload": 2, "job_id": "order-17"}
    assert root.post("/api/v1/queues/mail/jobs", json=again).status_code == 201
    same = root.post("/api/v1/queues/mail/jobs", json=again | {"payload": 3})
    assert (same.status_code, same.json()["payload"]) == (200, 2)  # idempotent by id

    unique = {"payload": 4, "unique_key": "invoice-9"}
    first = root.post("/api/v1/queues/mail/jobs", json=unique).json()
    refused = error_of(root.post("/api/v1/queues/mail/jobs", json=unique), 409)
    assert (refused["code"], refused["job_id"]) == ("duplicate", first["id"])
    held = root.post("/api/v1/queues/mail/jobs", json=unique | {"on_duplicate": "existing"})
    assert (held.status_code, held.json()["id"]) == (200, first["id"])
    assert len(broker.queues()) == 1

    for body, argument in [
        ({"payload": 1, "delay": "soon"}, "delay"),
        ({"payload": 1, "delay": 5, "at": 5}, "delay"),
        ({"payload": 1, "tenant": "a\nb"}, "tenant"),
        ({"payload": 1, "priority": 10}, "priority"),
        ({"payload": 1, "priorty": 1}, "priorty"),
        ({"payload": 1, "delay": True}, "delay"),  # never taken for one second
        ({"payload": 1, "max_retries": 5000}, "max_retries"),
        ({}, "payload"),
    ]:
        error = error_of(root.post("/api/v1/queues/mail/jobs", json=body), 422)
        assert (error["code"], error["argument"]) == ("invalid_argument", argument), body


def test_cancel_a_job(root, make_token: MakeToken, api: Api, producer: Producer,
                      kill: Kill, error_of: ErrorOf) -> None:  # fmt: skip
    pending, dead = producer.enqueue_many("q", [1, 2])
    scheduled = producer.enqueue("q", 3, delay=600)
    done = root.post(f"/api/v1/jobs/{pending.id}/cancel").json()
    assert done == {"job_id": pending.id, "queue": "q", "was": "pending", "worker": None}
    assert root.get(f"/api/v1/jobs/{pending.id}").json()["state"] == "cancelled"
    error = error_of(root.post(f"/api/v1/jobs/{pending.id}/cancel"), 409)
    assert (error["code"], error["state"]) == ("not_cancellable", "cancelled")
    kill("q", [dead])
    assert error_of(root.post(f"/api/v1/jobs/{dead.id}/cancel"), 409)["state"] == "dead"
    assert error_of(root.post("/api/v1/jobs/nope/cancel"), 404)["argument"] == "job_id"
    viewer = api(make_token("viewer", "observer", "admin.queue.peek"))
    refused = error_of(viewer.post(f"/api/v1/jobs/{scheduled.id}/cancel"), 403)
    assert refused["permission"] == "admin.queue.purge"
    elsewhere = api(make_token("other", "admin.queue.purge", queues=("tenant.*",)))
    assert error_of(elsewhere.post(f"/api/v1/jobs/{scheduled.id}/cancel"), 404)
    assert root.post(f"/api/v1/jobs/{scheduled.id}/cancel").json()["was"] == "scheduled"


def test_an_enqueue_only_token_learns_no_stored_job(
    make_token: MakeToken, api: Api, producer: Producer, error_of: ErrorOf
) -> None:
    producer.enqueue("tenant.a", {"secret": "card 4111"}, job_id="order-1", unique_key="k")
    client = api(make_token("writer", "admin.queue.enqueue", queues=("tenant.*",)))
    for body in [{"payload": 0, "job_id": "order-1"},
                 {"payload": 0, "unique_key": "k", "on_duplicate": "existing"}]:  # fmt: skip
        answer = client.post("/api/v1/queues/tenant.a/jobs", json=body)
        error = error_of(answer, 409)
        assert (error["code"], error["job_id"]) == ("duplicate", "order-1")
        assert "4111" not in answer.text


def test_stored_text_a_browser_cannot_take_is_answered_escaped(root, producer: Producer) -> None:
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    raw = '{"payload":"\\ud800 \\u202e","job_id":"odd"}'  # JSON escapes: a lone surrogate
    made = root.post("/api/v1/queues/mail/jobs", content=raw,
                     headers={"content-type": "application/json"})  # fmt: skip
    assert made.status_code == 201 and made.content.isascii()
    assert made.json()["payload"] == "\ud800 \u202e"
    producer.enqueue("mail", deep, job_id="deep")  # another producer nests deeper than shown
    listed = root.get("/api/v1/queues/mail/jobs").json()["jobs"]
    by_id = {job["id"]: job["payload"] for job in listed}
    assert by_id["odd"] == "\ud800 \u202e"
    assert by_id["deep"].startswith("(not shown: ") and "rwq admin job" in by_id["deep"]
    assert root.get("/api/v1/jobs/deep").status_code == 200
