"""The audit log: every check and change lands in the file; recording never blocks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rwq.config import Settings
from rwq.plugins.trust.audit import AuditLog, AuditRecord, audit_path, read
from rwq.plugins.trust.grant_file import Signer
from rwq.plugins.trust.grants import GrantStore
from rwq.plugins.trust.policy import load_policy

V1 = ("1.0.0", "sha256:" + "a" * 64)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "plugins" / "audit.jsonl"


@pytest.fixture
def log(log_path: Path) -> Iterator[AuditLog]:
    audit = AuditLog(log_path)
    yield audit
    audit.close()


@pytest.fixture
def store(tmp_path: Path, log: AuditLog) -> GrantStore:
    return GrantStore(tmp_path / "grants.json", audit=log)


def test_every_check_lands_in_the_file(store: GrantStore, log: AuditLog, log_path: Path) -> None:
    store.grant("p", ["events.subscribe"], version=V1[0], bundle_hash=V1[1], queues=["t.*"])
    before = time.time()
    for queue in ("t.a", "x", "t.b"):
        store.check("p", "events.subscribe", queue=queue, version=V1[0], bundle_hash=V1[1])
    store.check("p", "admin.queue.purge", queue="t.a", operation="purge_queue")
    log.flush()
    checks = read(log_path, kinds=["check"])
    assert [(r.plugin, r.operation, r.resource, r.allowed) for r in checks] == [
        ("p", "events.subscribe", "t.a", True),
        ("p", "events.subscribe", "x", False),
        ("p", "events.subscribe", "t.b", True),
        ("p", "admin.queue.purge:purge_queue", "t.a", False),
    ]
    assert all(before <= r.time <= time.time() for r in checks)
    assert checks[1].reason == "outside the granted scope"
    for line in log_path.read_text().splitlines():
        assert {"time", "kind", "plugin", "operation", "resource", "allowed"} <= set(
            json.loads(line)
        )


def test_grants_revokes_denials_and_policy_are_recorded(
    store: GrantStore, log: AuditLog, log_path: Path, tmp_path: Path
) -> None:
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1], granted_by="bob")
    store.deny("p", ["admin.queue.purge"], version=V1[0], bundle_hash=V1[1], denied_by="bob")
    store.revoke("p", ["ui.notifications"])
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("plugins:\n  '*':\n    grant: [observer]\n")
    store.apply_policy(load_policy(policy_file), "q", ["storage.read"], *V1)
    log.flush()
    records = [r for r in read(log_path) if r.kind != "check"]
    assert [(r.kind, r.plugin, r.operation, r.allowed) for r in records] == [
        ("grant", "p", "ui.notifications", True),
        ("deny", "p", "admin.queue.purge", False),
        ("revoke", "p", "ui.notifications", True),
        ("policy", "q", "storage.read", True),
    ]
    assert "by bob" in records[0].reason
    assert str(policy_file) in records[3].reason


def test_a_rebind_is_recorded(store: GrantStore, log: AuditLog, log_path: Path) -> None:
    alice = Signer("alice", "sha256:" + "1" * 32)
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1], signer=alice)
    store.review(
        "p", ["ui.notifications"], "1.0.1", "sha256:" + "b" * 64, signer=alice, trusted=True
    )
    log.flush()
    (rebind,) = [r for r in read(log_path, kinds=["grant"]) if "rebound" in r.reason]
    assert "1.0.0" in rebind.reason
    assert "1.0.1" in rebind.reason
    assert "signed by alice" in rebind.reason


def test_filters(log: AuditLog, log_path: Path) -> None:
    log.record("a", "events.subscribe", "q", True)
    time.sleep(0.002)  # distinct timestamps, so `since` has a record to start from
    log.record("a", "admin.queue.purge", "q", False, reason="not granted")
    time.sleep(0.002)
    log.record("b", "admin.queue.purge", "q", False)
    log.flush()
    middle = read(log_path)[1].time
    assert [r.plugin for r in read(log_path, plugin="a")] == ["a", "a"]
    assert [(r.plugin, r.allowed) for r in read(log_path, denied_only=True)] == [
        ("a", False),
        ("b", False),
    ]
    assert [r.plugin for r in read(log_path, plugin="a", denied_only=True)] == ["a"]
    assert [r.plugin for r in read(log_path, limit=1)] == ["b"]
    assert len(read(log_path, since=middle)) == 2
    assert read(log_path.with_name("missing.jsonl")) == []


def test_a_delegation_chain_is_recorded(store: GrantStore, log: AuditLog, log_path: Path) -> None:
    store.grant("caller", ["events.subscribe"], version="1", bundle_hash="c", queues=["t.*"])
    store.grant("dep", ["events.subscribe"], version="2", bundle_hash="d")
    versions = {"caller": ("1", "c"), "dep": ("2", "d")}
    assert store.check_chain(["caller", "dep"], "events.subscribe", queue="t.a", versions=versions)
    denied = store.check_chain(
        ["caller", "dep"], "events.subscribe", queue="other", versions=versions
    )
    assert not denied.allowed
    assert denied.reason.startswith("caller:")  # the dependency alone could, the caller can't
    assert store.check("dep", "events.subscribe", queue="other").allowed
    log.flush()
    chained = [r for r in read(log_path, kinds=["check"]) if r.chain]
    assert [(r.plugin, r.chain, r.allowed) for r in chained] == [
        ("dep", ("caller", "dep"), True),
        ("dep", ("caller", "dep"), False),
    ]
    assert len([r for r in read(log_path, plugin="caller") if r.kind == "check"]) == 2
    assert "caller -> dep" in chained[0].describe()


def test_record_never_blocks_on_a_slow_writer(log_path: Path) -> None:
    log = AuditLog(log_path, flush_interval=0.01)
    release = threading.Event()
    real_write = log._write

    def stuck(data: bytes) -> None:
        release.wait()
        real_write(data)

    log._write = stuck  # type: ignore[method-assign]
    for i in range(20_000):  # would hang here if record() waited for the writer
        log.record("p", "events.subscribe", f"q{i}", True)
    release.set()
    log.close()
    assert len(read(log_path)) == 20_000


def test_a_writer_far_behind_drops_and_says_how_many(log_path: Path) -> None:
    log = AuditLog(log_path, flush_interval=0.01, max_pending=10)
    release = threading.Event()
    real_write = log._write

    def stuck(data: bytes) -> None:
        release.wait()
        real_write(data)

    log._write = stuck  # type: ignore[method-assign]
    log.record("p", "first", "", True)
    deadline = time.monotonic() + 5
    while log.pending:  # the writer took it and is now stuck writing it
        assert time.monotonic() < deadline
        time.sleep(0.005)
    for i in range(25):
        log.record("p", f"op{i}", "", True)
    assert log.pending == 10
    release.set()
    log.close()
    records = read(log_path)
    assert [r.operation for r in records[:11]] == ["first"] + [f"op{i}" for i in range(10)]
    assert records[-1].kind == "dropped"
    assert records[-1].dropped == 15
    assert "15" in records[-1].reason


def test_a_failing_disk_is_counted_not_raised(log_path: Path) -> None:
    log = AuditLog(log_path, flush_interval=3600)
    real_write = log._write

    def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    log._write = full  # type: ignore[method-assign]
    log.record("p", "a", "", True)
    log.record("p", "b", "", True)
    log.flush()
    log._write = real_write  # type: ignore[method-assign]
    log.record("p", "c", "", True)
    log.close()
    records = read(log_path)
    assert [r.operation for r in records] == ["c", "audit"]
    assert records[1].dropped == 2


def test_the_writer_flushes_on_its_own(log: AuditLog, log_path: Path) -> None:
    log.record("p", "a", "", True)
    deadline = time.monotonic() + 5
    while not read(log_path):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_close_writes_pending_and_later_records_are_counted(log_path: Path) -> None:
    with AuditLog(log_path, flush_interval=3600) as log:
        log.record("p", "a", "", True)
    assert [r.operation for r in read(log_path)] == ["a"]
    log.record("p", "late", "", True)  # after close: dropped, never raised
    log.close()
    assert [r.operation for r in read(log_path)] == ["a"]


def test_a_cut_line_is_skipped(log: AuditLog, log_path: Path) -> None:
    log.record("p", "a", "", True)
    log.flush()
    with log_path.open("a") as handle:
        handle.write('{"time": 1, "kind": "check", "plu')
    assert [r.operation for r in read(log_path)] == ["a"]


def test_records_round_trip_and_path() -> None:
    record = AuditRecord(1.5, "check", "p", "x", "q", False, "why", ("a", "p"))
    assert AuditRecord.from_dict(record.to_dict()) == record
    assert "DENIED" in record.describe()
    assert audit_path(Settings(state_dir=Path("/s"))) == Path("/s/plugins/audit.jsonl")
