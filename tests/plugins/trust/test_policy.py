"""Policy files: pre-granting for headless hosts, and errors that name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rwq.plugins.trust.grants import GrantStore
from rwq.plugins.trust.policy import Policy, PolicyError, PolicyGrant, load_policy

V1 = ("1.2.3", "sha256:" + "a" * 64)
V2 = ("1.3.0", "sha256:" + "b" * 64)

EXAMPLE = """\
plugins:
  tenant-sla-monitor:
    grant: [events.subscribe, admin.queue.peek, admin.alerts.send]
    queues: ["tenant.*"]
    expires: 24h
  bulk-ops:
    deny: [admin.queue.purge]
  "*":
    grant: [observer]
"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 5_000_000.0

    def __call__(self) -> float:
        return self.now


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write_policy(tmp_path, EXAMPLE))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> GrantStore:
    return GrantStore(tmp_path / "grants.json", clock=clock)


def test_the_example_loads(policy: Policy) -> None:
    rule = policy.rules["tenant-sla-monitor"]
    assert rule.grant == {"events.subscribe", "admin.queue.peek", "admin.alerts.send"}
    assert rule.queues == ("tenant.*",)
    assert rule.expires_in == 24 * 3600
    assert "admin.stats.read" in policy.rules["*"].grant
    assert "admin.queue.peek" not in policy.rules["*"].grant  # a level omits sensitive ones
    assert policy.rules["bulk-ops"].deny == {"admin.queue.purge"}


def test_apply_grants_what_is_requested_and_allowed(
    store: GrantStore, policy: Policy, clock: FakeClock
) -> None:
    requested = ["events.subscribe", "admin.queue.peek", "admin.alerts.send", "admin.queue.purge"]
    review = store.apply_policy(policy, "tenant-sla-monitor", requested, *V1)
    assert review.granted == {"events.subscribe", "admin.queue.peek", "admin.alerts.send"}
    assert review.pending == {"admin.queue.purge"}  # left for a person to approve
    grants = store.grants_for("tenant-sla-monitor")
    assert {g.granted_by for g in grants} == {f"policy:{policy.path}"}
    assert all(g.expires_at == clock.now + 24 * 3600 for g in grants)

    def check(perm: str, queue: str | None = None) -> bool:
        return store.check(
            "tenant-sla-monitor", perm, queue=queue, version=V1[0], bundle_hash=V1[1]
        ).allowed

    assert check("admin.queue.peek", "tenant.acme")
    assert not check("admin.queue.peek", "billing")  # cut to the policy's queues
    assert check("admin.alerts.send")
    assert not check("admin.stats.read", "tenant.acme")  # allowed by '*' but never requested
    clock.now += 24 * 3600
    assert not check("admin.queue.peek", "tenant.acme")


def test_the_star_rule_applies_to_every_plugin(store: GrantStore, policy: Policy) -> None:
    review = store.apply_policy(policy, "anything", ["admin.stats.read", "admin.queue.peek"], *V1)
    assert review.granted == {"admin.stats.read"}
    assert review.pending == {"admin.queue.peek"}
    for grant in store.grants_for("anything"):
        assert grant.expires_at is None


def test_policy_denials_are_remembered(store: GrantStore, policy: Policy) -> None:
    review = store.apply_policy(policy, "bulk-ops", ["admin.queue.purge", "ui.notifications"], *V1)
    assert review.denied == {"admin.queue.purge"}
    assert review.granted == {"ui.notifications"}
    again = store.apply_policy(policy, "bulk-ops", ["admin.queue.purge", "ui.notifications"], *V2)
    assert again.complete
    assert again.denied == {"admin.queue.purge"}  # remembered, not asked again


def test_a_requested_queue_inside_the_policy_scope_is_kept(
    store: GrantStore, policy: Policy
) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Request:
        name: str
        queues: tuple[str, ...]

    request = Request("admin.queue.peek", ("tenant.acme", "billing", "*"))
    store.apply_policy(policy, "tenant-sla-monitor", [request], *V1)
    (grant,) = store.grants_for("tenant-sla-monitor")
    # inside the policy: kept; outside: dropped; wider: cut down to the policy's globs
    assert grant.scope.queues == ("tenant.acme", "tenant.*")


def test_decide_denies_first_then_grants_by_the_first_rule_cut_to_its_scope(
    policy: Policy,
) -> None:
    anywhere = (("*",), ("*",))
    pending = {
        "admin.queue.peek": (("tenant.acme", "billing"), ("*",)),
        "admin.stats.read": anywhere,
    }
    assert policy.decide("tenant-sla-monitor", pending) == (
        [],
        [
            PolicyGrant(("admin.queue.peek",), ("tenant.acme",), ("*",), 24 * 3600),
            PolicyGrant(("admin.stats.read",), ("*",), ("*",), None),
        ],
    )
    to_deny, to_grant = policy.decide("bulk-ops", {"admin.queue.purge": anywhere})
    assert (to_deny, to_grant) == (["admin.queue.purge"], [])


def test_applying_twice_grants_once(store: GrantStore, policy: Policy) -> None:
    store.apply_policy(policy, "tenant-sla-monitor", ["events.subscribe"], *V1)
    store.apply_policy(policy, "tenant-sla-monitor", ["events.subscribe"], *V1)
    assert len(store.grants_for("tenant-sla-monitor")) == 1


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("plugins:\n  x:\n    grant: [events.subscribe, admin.nope]\n", "plugins.x.grant[1]",
         "unknown permission 'admin.nope'"),
        ("plugins:\n  x:\n    grnat: [observer]\n", "plugins.x.grnat", "unknown field"),
        ("plugins:\n  x:\n    expires: soon\n", "plugins.x.expires", "duration"),
        ("plugins:\n  x:\n    queues: 3\n", "plugins.x.queues", "list of strings"),
        ("plugins:\n  x:\n    operations: []\n", "plugins.x.operations", "at least one"),
        ("plugins:\n  x: [observer]\n", "plugins.x", "expected a mapping"),
        ("plugins: [x]\n", "plugins", "expected a mapping"),
        ("rules: {}\n", "", "'plugins'"),
        ("plugins: {x: [\n", "line 2, column 1", "invalid YAML"),
        ("plugins: {x: !!int abc}\n", "line 1, column 14", "!!int cannot read"),
    ],
)  # fmt: skip
def test_errors_name_file_and_field(tmp_path: Path, text: str, field: str, reason: str) -> None:
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyError, match=reason) as info:
        load_policy(path)
    assert info.value.source == str(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_a_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "nope.yaml")
