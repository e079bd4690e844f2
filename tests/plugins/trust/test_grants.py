"""Grants: scopes, levels, expiry, version binding, denials, revoke, persistence, atomicity."""

from __future__ import annotations

import fnmatch
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rwq.errors import RwqError
from rwq.plugins.contract.permissions import CATALOG, Level, UnknownPermission, expand
from rwq.plugins.package.manifest import PermissionRequest
from rwq.plugins.trust.grant_file import GrantStoreError, Signer
from rwq.plugins.trust.grants import GrantStore, grants_path
from rwq.plugins.trust.review import GrantWiderThanAsked
from rwq.plugins.trust.scope import Scope

V1 = ("1.0.0", "sha256:" + "a" * 64)
V2 = ("1.1.0", "sha256:" + "b" * 64)
V3 = ("2.0.0", "sha256:" + "c" * 64)
ALICE = Signer("alice", "sha256:" + "1" * 32)
MALLORY = Signer("mallory", "sha256:" + "2" * 32)
BY_ALICE = {"signer": ALICE, "trusted": True}
"""A review of code that alice's trusted key signed."""


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "plugins" / "grants.json"


@pytest.fixture
def make_store(path: Path, clock: FakeClock) -> Callable[..., GrantStore]:
    def make(**kwargs: object) -> GrantStore:
        return GrantStore(path, clock=clock, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def store(make_store: Callable[..., GrantStore]) -> GrantStore:
    return make_store()


def allowed(store: GrantStore, perm: str, binding: tuple[str, str] = V1, **kw: str) -> bool:
    version, bundle_hash = binding
    return store.check("p", perm, version=version, bundle_hash=bundle_hash, **kw).allowed


# -- scopes and levels ----------------------------------------------------------------------


def test_queue_glob_scope(store: GrantStore) -> None:
    store.grant("p", ["admin.queue.peek"], version=V1[0], bundle_hash=V1[1], queues=["tenant.*"])
    assert allowed(store, "admin.queue.peek", queue="tenant.acme")
    assert not allowed(store, "admin.queue.peek", queue="billing")
    assert not allowed(store, "admin.queue.peek", queue="Tenant.acme")  # case-sensitive
    # a queue-scoped permission without a queue needs an unrestricted scope
    assert not allowed(store, "admin.queue.peek")
    assert not allowed(store, "admin.queue.purge", queue="tenant.acme")


def test_queue_scope_does_not_limit_permissions_that_are_not_queue_scoped(
    store: GrantStore,
) -> None:
    store.grant(
        "p",
        ["events.subscribe", "admin.alerts.send"],
        version=V1[0],
        bundle_hash=V1[1],
        queues=["tenant.*"],
    )
    assert not CATALOG["admin.alerts.send"].queue_scoped
    assert allowed(store, "admin.alerts.send")
    assert allowed(store, "events.subscribe", queue="tenant.x")
    assert not allowed(store, "events.subscribe", queue="billing")


def test_operation_and_resource_scope(store: GrantStore) -> None:
    store.grant(
        "p",
        ["admin.queue.enqueue"],
        version=V1[0],
        bundle_hash=V1[1],
        operations=["enqueue_*"],
        resources=["tenant/*"],
    )
    ok = {"queue": "q", "operation": "enqueue_job", "resource": "tenant/a"}
    assert allowed(store, "admin.queue.enqueue", **ok)
    assert not allowed(store, "admin.queue.enqueue", **{**ok, "operation": "purge"})
    assert not allowed(store, "admin.queue.enqueue", **{**ok, "resource": "other/a"})
    assert not allowed(store, "admin.queue.enqueue", queue="q", operation="enqueue_job")


def test_a_level_implies_the_levels_below_but_no_sensitive_permission(store: GrantStore) -> None:
    store.grant("p", ["operator"], version=V1[0], bundle_hash=V1[1])
    for name, perm in CATALOG.items():
        expected = perm.level <= Level.OPERATOR and not perm.sensitive
        assert allowed(store, name, queue="q") is expected, name
    assert allowed(store, "admin.stats.read", queue="q")  # observer, by inheritance
    assert not allowed(store, "admin.queue.peek", queue="q")  # operator but sensitive


def test_system_level_grants_no_sensitive_permission(store: GrantStore) -> None:
    store.grant("p", ["system"], version=V1[0], bundle_hash=V1[1])
    for name, perm in CATALOG.items():
        assert allowed(store, name, queue="q") is (not perm.sensitive), name
    store.grant("p", ["admin.queue.purge"], version=V1[0], bundle_hash=V1[1])
    assert allowed(store, "admin.queue.purge", queue="q")  # approved by name


def test_unknown_names(store: GrantStore) -> None:
    with pytest.raises(UnknownPermission, match=r"admin\.queue\.nuke"):
        store.grant("p", ["admin.queue.nuke"], version=V1[0], bundle_hash=V1[1])
    with pytest.raises(RwqError, match="nothing to grant"):
        store.grant("p", [], version=V1[0], bundle_hash=V1[1])
    store.grant("p", ["observer"], version=V1[0], bundle_hash=V1[1])
    decision = store.check("p", "admin.queue.nuke", version=V1[0], bundle_hash=V1[1])
    assert not decision.allowed
    assert "unknown permission" in decision.reason


def test_expiry_follows_the_clock(store: GrantStore, clock: FakeClock) -> None:
    grant = store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1], expires_in=60)
    assert grant.expires_at == clock.now + 60
    assert allowed(store, "ui.notifications")
    clock.now += 59.9
    assert allowed(store, "ui.notifications")
    clock.now += 0.2
    decision = store.check("p", "ui.notifications", version=V1[0], bundle_hash=V1[1])
    assert not decision.allowed
    assert "expired" in decision.reason


# -- binding to version and bundle hash -----------------------------------------------------


def test_a_grant_is_bound_to_version_and_bundle_hash(store: GrantStore) -> None:
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1])
    assert allowed(store, "ui.notifications", V1)
    assert not allowed(store, "ui.notifications", (V1[0], V2[1]))  # same version, other bundle
    assert not allowed(store, "ui.notifications", (V2[0], V1[1]))
    # without a binding the check uses the plugin's current one
    assert store.check("p", "ui.notifications").allowed


def test_an_update_signed_by_the_same_trusted_key_asking_the_same_keeps_its_grants(
    store: GrantStore,
) -> None:
    requested = ["events.subscribe", "admin.queue.peek"]
    store.grant("p", requested, version=V1[0], bundle_hash=V1[1], queues=["tenant.*"], signer=ALICE)
    review = store.review("p", requested, *V2, signer=ALICE, trusted=True)
    assert review.complete
    assert review.granted == frozenset(requested)
    assert review.rebound_from == V1
    assert allowed(store, "admin.queue.peek", V2, queue="tenant.a")
    assert not allowed(store, "admin.queue.peek", V2, queue="billing")  # approved scope kept
    assert allowed(store, "admin.queue.peek", V1, queue="tenant.a")  # old version still runs
    assert {g.signer for g in store.grants_for("p")} == {ALICE}
    again = store.review("p", requested, *V2, signer=ALICE, trusted=True)
    assert again.complete
    assert again.rebound_from is None


@pytest.mark.parametrize(
    ("granted_to", "signer", "trusted", "why"),
    [
        (None, None, False, "this code is unsigned"),
        (ALICE, None, False, "this code is unsigned"),
        (ALICE, MALLORY, True, "the code granted was signed by alice"),
        (None, ALICE, True, "the code granted was unsigned"),
        (ALICE, ALICE, False, "no longer trusted"),
    ],
    ids=["unsigned", "signed-then-unsigned", "another-signer", "newly-signed", "untrusted"],
)
def test_any_other_change_awaits_approval_and_the_old_binding_keeps_its_grants(
    store: GrantStore, granted_to: Signer | None, signer: Signer | None, trusted: bool, why: str
) -> None:
    store.grant("p", ["admin.queue.enqueue"], version=V1[0], bundle_hash=V1[1], signer=granted_to)
    review = store.review("p", ["admin.queue.enqueue"], *V2, signer=signer, trusted=trusted)
    assert review.pending == {"admin.queue.enqueue"}
    assert review.rebound_from is None
    assert review.previous is not None
    assert review.previous.binding == V1
    assert review.previous.signer == granted_to
    assert review.signer == signer
    (item,) = review.items
    assert why in item.reason
    assert not allowed(store, "admin.queue.enqueue", V2, queue="q")  # the changed code: no
    assert allowed(store, "admin.queue.enqueue", V1, queue="q")  # the running code: still yes
    store.approve(review)
    assert allowed(store, "admin.queue.enqueue", V2, queue="q")
    assert {g.signer for g in store.grants_for("p") if g.binding == V2} == {signer}


def test_the_same_content_under_another_signature_is_another_binding(store: GrantStore) -> None:
    """A signature is a file of the bundle, so re-signing changes the bundle hash: a grant of
    the code alice signed does not pass to the same files signed by mallory."""
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1], signer=ALICE)
    review = store.review("p", ["ui.notifications"], V1[0], V2[1], signer=MALLORY, trusted=True)
    assert review.pending == {"ui.notifications"}


def test_an_update_asking_fewer_is_rebound_with_only_those(store: GrantStore) -> None:
    store.grant(
        "p", ["events.subscribe", "ui.notifications"], version=V1[0], bundle_hash=V1[1],
        signer=ALICE,
    )  # fmt: skip
    review = store.review("p", ["ui.notifications"], *V2, **BY_ALICE)
    assert review.complete
    assert allowed(store, "ui.notifications", V2)
    assert not allowed(store, "events.subscribe", V2, queue="q")


def test_an_update_asking_more_is_pending_and_the_old_binding_stays(store: GrantStore) -> None:
    store.grant("p", ["events.subscribe"], version=V1[0], bundle_hash=V1[1], signer=ALICE)
    review = store.review("p", ["events.subscribe", "admin.queue.purge"], *V2, **BY_ALICE)
    assert not review.complete
    assert review.pending == {"events.subscribe", "admin.queue.purge"}
    assert review.rebound_from is None
    carried = next(i for i in review.items if i.permission == "events.subscribe")
    assert "admin.queue.purge" in carried.reason
    assert not allowed(store, "events.subscribe", V2, queue="q")
    assert allowed(store, "events.subscribe", V1, queue="q")

    store.approve(review)
    assert store.review("p", ["events.subscribe", "admin.queue.purge"], *V2, **BY_ALICE).complete
    assert allowed(store, "admin.queue.purge", V2, queue="q")
    assert allowed(store, "events.subscribe", V1, queue="q")


def test_approve_grants_each_permission_its_requested_queues(store: GrantStore) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Request:
        name: str
        queues: tuple[str, ...]

    review = store.review(
        "p", [Request("admin.queue.peek", ("tenant.*",)), Request("ui.notifications", ())], *V1
    )
    assert review.pending == {"admin.queue.peek", "ui.notifications"}
    store.approve(review)
    assert allowed(store, "admin.queue.peek", queue="tenant.x")
    assert not allowed(store, "admin.queue.peek", queue="other")
    assert allowed(store, "ui.notifications")


def request(name: str, *queues: str) -> PermissionRequest:
    scope = {"scope": {"queues": list(queues)}} if queues else {}
    return PermissionRequest.model_validate({"name": name, **scope})


def test_a_grant_of_what_was_requested_keeps_the_requested_scope(store: GrantStore) -> None:
    """A CLI grant used to be on every queue unless --queues said otherwise."""
    asked = [request("admin.queue.enqueue", "a.*"), request("ui.notifications")]
    names = ["admin.queue.enqueue", "ui.notifications"]
    store.grant_requested("p", asked, names, version=V1[0], bundle_hash=V1[1])
    assert allowed(store, "admin.queue.enqueue", queue="a.x")
    assert not allowed(store, "admin.queue.enqueue", queue="b.x")
    assert allowed(store, "ui.notifications")


def test_queues_may_narrow_a_requested_scope_never_widen_it(store: GrantStore) -> None:
    asked = [request("admin.queue.enqueue", "a.*")]
    grant = partial(
        store.grant_requested, "p", asked, ["admin.queue.enqueue"], version=V1[0],
        bundle_hash=V1[1],
    )  # fmt: skip
    widened = r"--queues b\.\*: p asks for admin\.queue\.enqueue on a\.\* only"
    with pytest.raises(GrantWiderThanAsked, match=widened):
        grant(queues=["b.*"])
    with pytest.raises(GrantWiderThanAsked, match=r"--queues \*"):
        grant(queues=["a.x", "*"])
    assert store.grants_for("p") == ()  # a refused grant grants nothing
    grant(queues=["a.x"])
    assert allowed(store, "admin.queue.enqueue", queue="a.x")
    assert not allowed(store, "admin.queue.enqueue", queue="a.y")


def test_a_permission_not_requested_is_never_granted(store: GrantStore) -> None:
    asked = [request("admin.stats.read"), request("admin.queue.peek")]
    with pytest.raises(GrantWiderThanAsked, match=r"p does not ask for admin\.queue\.purge"):
        store.grant_requested("p", asked, ["admin.queue.purge"], version=V1[0], bundle_hash=V1[1])
    # a level stands for the permissions of it the manifest asks for (peek is sensitive:
    # in no level)
    store.grant_requested("p", asked, ["observer"], version=V1[0], bundle_hash=V1[1])
    (grant,) = store.grants_for("p")
    assert grant.permissions == frozenset({"admin.stats.read"})
    with pytest.raises(GrantWiderThanAsked, match="no permission of level 'observer'"):
        store.grant_requested("q", [], ["observer"], version=V1[0], bundle_hash=V1[1])


def test_manifest_requests_are_reviewed_with_their_queues_and_operations(
    store: GrantStore,
) -> None:
    request = PermissionRequest.model_validate(
        {"name": "admin.queue.peek", "scope": {"queues": ["t.*"], "operations": ["peek_*"]}}
    )
    review = store.review("p", [request, "ui.notifications"], *V1)
    (item, _) = review.items
    assert (item.queues, item.operations) == (("t.*",), ("peek_*",))
    store.approve(review)
    assert allowed(store, "admin.queue.peek", queue="t.a", operation="peek_job")
    assert not allowed(store, "admin.queue.peek", queue="t.a", operation="purge")
    assert allowed(store, "ui.notifications", operation="notify")


def test_a_rebind_keeps_only_the_previous_and_the_new_binding(store: GrantStore) -> None:
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1], signer=ALICE)
    store.review("p", ["ui.notifications"], *V2, **BY_ALICE)
    store.review("p", ["ui.notifications"], *V3, **BY_ALICE)
    bindings = {g.binding for g in store.grants_for("p")}
    assert bindings == {V2, V3}


# -- denials --------------------------------------------------------------------------------


def test_denials_are_remembered_across_versions_and_restarts(
    store: GrantStore, make_store: Callable[..., GrantStore]
) -> None:
    store.grant("p", ["events.subscribe"], version=V1[0], bundle_hash=V1[1], signer=ALICE)
    store.deny("p", ["admin.queue.purge"], version=V1[0], bundle_hash=V1[1], denied_by="alice")
    restarted = make_store()
    review = restarted.review("p", ["events.subscribe", "admin.queue.purge"], *V2, **BY_ALICE)
    assert review.denied == {"admin.queue.purge"}
    assert review.granted == {"events.subscribe"}  # the rest was the same: re-bound
    assert review.complete
    decision = restarted.check(
        "p", "admin.queue.purge", queue="q", version=V2[0], bundle_hash=V2[1]
    )
    assert not decision.allowed
    assert "denied by alice" in decision.reason


def test_deny_revokes_and_grant_clears_the_denial(store: GrantStore) -> None:
    store.grant("p", ["operator"], version=V1[0], bundle_hash=V1[1])
    store.deny("p", ["admin.queue.enqueue"], version=V1[0], bundle_hash=V1[1])
    assert not allowed(store, "admin.queue.enqueue", queue="q")
    assert allowed(store, "admin.job.requeue", queue="q")
    store.grant("p", ["admin.queue.enqueue"], version=V1[0], bundle_hash=V1[1])
    assert allowed(store, "admin.queue.enqueue", queue="q")
    assert store.denials_for("p") == ()


# -- revoke ---------------------------------------------------------------------------------


def test_revoke_is_immediate(store: GrantStore) -> None:
    store.grant("p", ["observer"], version=V1[0], bundle_hash=V1[1])
    assert store.revoke("p", ["ui.notifications"]) == {"ui.notifications"}
    assert not allowed(store, "ui.notifications")
    assert allowed(store, "storage.read")
    assert store.revoke("p") == expand(["observer"]) - {"ui.notifications"}
    assert not allowed(store, "storage.read")
    assert store.grants_for("p") == ()
    assert store.revoke("p") == frozenset()


def test_a_revoke_from_another_process_reaches_a_running_store(
    make_store: Callable[..., GrantStore],
) -> None:
    running = make_store(reload_interval=0.05)
    cli = make_store()
    cli.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1])
    deadline = time.monotonic() + 5
    while not allowed(running, "ui.notifications"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    cli.revoke("p")
    while allowed(running, "ui.notifications"):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_store_rereads_only_after_its_interval_or_on_reload(
    make_store: Callable[..., GrantStore],
) -> None:
    running = make_store(reload_interval=3600)
    make_store().grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1])
    assert not allowed(running, "ui.notifications")
    running.reload()
    assert allowed(running, "ui.notifications")


# -- persistence ----------------------------------------------------------------------------


def test_grants_persist_across_restarts(
    store: GrantStore, make_store: Callable[..., GrantStore], path: Path
) -> None:
    store.grant(
        "p", ["admin.queue.peek"], version=V1[0], bundle_hash=V1[1], queues=["t.*"], expires_in=9
    )
    store.deny("p", ["admin.queue.purge"], version=V1[0], bundle_hash=V1[1])
    again = make_store()
    assert again.grants_for("p") == store.grants_for("p")
    assert again.denials_for("p") == store.denials_for("p")
    assert allowed(again, "admin.queue.peek", queue="t.x")
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_the_signer_persists_and_a_file_written_before_signers_reads_as_unsigned(
    store: GrantStore, make_store: Callable[..., GrantStore], path: Path
) -> None:
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1], signer=ALICE)
    assert make_store().grants_for("p")[0].signer == ALICE
    data = json.loads(path.read_text())
    assert data["grants"][0]["signer"] == {"name": "alice", "fingerprint": ALICE.fingerprint}
    del data["grants"][0]["signer"]  # a grants file of an rwq that did not record signers
    path.write_text(json.dumps(data))
    old = make_store()
    assert old.grants_for("p")[0].signer is None
    assert allowed(old, "ui.notifications", V1)  # still valid for the code it was given to
    assert old.review("p", ["ui.notifications"], *V2, **BY_ALICE).pending == {"ui.notifications"}


def test_grants_path_is_in_the_state_dir(tmp_path: Path) -> None:
    from rwq.config import Settings

    assert grants_path(Settings(state_dir=tmp_path)) == tmp_path / "plugins" / "grants.json"


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_write_leaves_the_previous_complete_file(
    store: GrantStore,
    make_store: Callable[..., GrantStore],
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failing: str,
) -> None:
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1])
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, failing, crash)
        with pytest.raises(GrantStoreError, match="cannot write"):
            store.grant("p", ["storage.read"], version=V1[0], bundle_hash=V1[1])
        with pytest.raises(GrantStoreError):
            store.revoke("p")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["grants.json", "grants.json.lock"]
    assert allowed(store, "ui.notifications")  # nothing applied in memory either
    assert not allowed(store, "storage.read")
    reloaded = make_store()
    assert [g.permissions for g in reloaded.grants_for("p")] == [{"ui.notifications"}]


def test_a_corrupt_file_raises_and_is_never_overwritten(
    store: GrantStore, make_store: Callable[..., GrantStore], path: Path
) -> None:
    store.grant("p", ["ui.notifications"], version=V1[0], bundle_hash=V1[1])
    path.write_text('{"format": 1, "grants": [{"plugin": ')
    with pytest.raises(GrantStoreError, match=str(path)) as info:
        make_store()
    assert info.value.path == path
    # a running store fails closed and refuses to write over the bad file
    with pytest.raises(GrantStoreError):
        store.reload()
    decision = store.check("p", "ui.notifications", version=V1[0], bundle_hash=V1[1])
    assert not decision.allowed
    assert "unreadable" in decision.reason
    with pytest.raises(GrantStoreError):
        store.grant("p", ["storage.read"], version=V1[0], bundle_hash=V1[1])
    assert path.read_text() == '{"format": 1, "grants": [{"plugin": '


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[]", "expected a JSON object"),
        ('{"format": 99}', "newer rwq"),
        ('{"format": "1"}', "format: expected 1"),
        ('{"format": 1, "grants": [{"plugin": 3}]}', "grants.0.plugin: Input should be a valid"),
        ('{"format": 1, "denials": {}}', "denials: Input should be a valid tuple"),
    ],
)
def test_invalid_files_name_the_field(path: Path, content: str, reason: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(GrantStoreError, match=reason):
        GrantStore(path)


def _grant_many(path: str, plugin: str, n: int) -> None:
    store = GrantStore(Path(path))
    for i in range(n):
        store.grant(plugin, ["ui.notifications"], version=f"1.{i}", bundle_hash="h")


def test_concurrent_grants_from_two_processes_all_persist(path: Path) -> None:
    path.parent.mkdir(parents=True)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_grant_many, args=(str(path), f"p{i}", 15)) for i in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    store = GrantStore(path)
    assert len(store.grants_for("p0")) == 15
    assert len(store.grants_for("p1")) == 15


# -- properties -----------------------------------------------------------------------------

glob_chars = st.sampled_from(list("ab.-*?[]!"))
globs = st.text(glob_chars, max_size=6)
names = st.text(st.sampled_from(list("ab.-[]*?")), max_size=6)


@given(glob=globs, queue=names)
def test_scope_matches_exactly_what_fnmatch_matches(glob: str, queue: str) -> None:
    assert Scope(queues=(glob,)).allows(queue) is fnmatch.fnmatchcase(queue, glob)


@given(queue_globs=st.lists(globs, min_size=1, max_size=3), queue=names)
def test_a_scope_matches_if_any_glob_matches(queue_globs: list[str], queue: str) -> None:
    expected = any(fnmatch.fnmatchcase(queue, g) for g in queue_globs)
    assert Scope(queues=tuple(queue_globs)).allows(queue) is expected


_plugins = count()
_store_dir = tempfile.TemporaryDirectory(prefix="rwq-grants-prop-")
_prop_store = GrantStore(Path(_store_dir.name) / "grants.json")
grantable = st.sampled_from(sorted(CATALOG) + [level.label for level in Level])


@settings(max_examples=40, deadline=None)
@given(
    granted=st.lists(grantable, min_size=1, max_size=4),
    scope=st.lists(st.sampled_from(["*", "tenant.*", "a", "b?"]), min_size=1, max_size=2),
    permission=st.sampled_from(sorted(CATALOG)),
    queue=st.sampled_from(["tenant.x", "a", "bb", "zzz"]),
)
def test_check_never_allows_what_was_not_granted(
    granted: list[str], scope: list[str], permission: str, queue: str
) -> None:
    plugin = f"prop{next(_plugins)}"
    _prop_store.grant(plugin, granted, version="1", bundle_hash="h", queues=scope)
    ok = _prop_store.check(plugin, permission, queue=queue, version="1", bundle_hash="h").allowed
    in_scope = not CATALOG[permission].queue_scoped or any(
        fnmatch.fnmatchcase(queue, g) for g in scope
    )
    assert ok is (permission in expand(granted) and in_scope)
    assert not _prop_store.check(plugin, permission, queue=queue, version="2", bundle_hash="h")
