"""Grants bound to the signer, in a running host: changed code keeps its grants without asking
only when the trusted key that signed the granted code signs it too; any other change waits
for approval while the running version keeps serving with its grants."""

from __future__ import annotations

import shutil
from pathlib import Path

from manager_host import Host, write_plugin

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.package.pack import pack
from rwq.plugins.trust.signing import TrustStore, generate_key, sign_bundle

ASKS = ["admin.queue.enqueue"]


def enqueue_allowed(host: Host, name: str, version: str, bundle_hash: str) -> bool:
    from rwq.plugins.trust.grants import GrantStore, grants_path

    store = GrantStore(grants_path(host.settings))
    decision = store.check(
        name, "admin.queue.enqueue", queue="q", version=version, bundle_hash=bundle_hash
    )
    return decision.allowed


def key(host: Host, tmp_path: Path, publisher: str, *, trust: bool = True) -> Path:
    path = tmp_path / "keys" / publisher
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        public = generate_key(path, publisher)
        if trust:
            TrustStore.from_settings(host.settings).add(public)
    return path


def release(
    host: Host, tmp_path: Path, version: str, signer: Path | None, *, text: str = "v"
) -> Path:
    """Version ``version`` of plugin "p" packed (and signed by ``signer``) into the plugins dir,
    replacing what is there."""
    source = write_plugin(tmp_path / f"src-{version}-{text}", "p", {"render": [
        {"type": "text", "text": text}]}, version=version, permissions=ASKS)  # fmt: skip
    bundle = pack(source, tmp_path / f"dist-{version}-{text}")
    if signer is not None:
        sign_bundle(bundle, signer, None, signer.name)
    target = host.root / "p.zip"
    shutil.copy(bundle, target)
    return target


def test_unsigned_changed_code_waits_for_approval_while_the_old_code_serves(
    host: Host, tmp_path: Path
) -> None:
    """The reproduction of the issue: changed files of a granted unsigned plugin no longer
    keep its grants; the new code waits, showing what changed."""
    first = release(host, tmp_path, "1.0.0", None, text="old")
    host.grant(first, *ASKS)
    manager = host.started()
    assert manager.state("p") is PluginState.ACTIVE
    old = open_bundle(first, extract_dir=tmp_path / "x")
    changed = release(host, tmp_path, "1.0.0", None, text="new")  # same version, new content
    new = open_bundle(changed, extract_dir=tmp_path / "x")

    result = manager.reload("p")
    assert not result.ok
    assert "awaits approval of admin.queue.enqueue" in result.reason
    assert manager.state("p") is PluginState.ACTIVE  # the old code keeps serving
    assert manager.render("p", 20, 3).elements == [{"type": "text", "text": "old"}]
    assert enqueue_allowed(host, "p", "1.0.0", old.sha256)
    assert not enqueue_allowed(host, "p", "1.0.0", new.sha256)

    (pending,) = manager.pending_approvals()
    assert pending.update
    review = pending.review
    assert review.bundle_hash == new.sha256 and review.signer is None
    assert review.previous is not None
    assert review.previous.binding == ("1.0.0", old.sha256) and review.previous.signer is None
    (item,) = review.items
    assert "this code is unsigned" in item.reason

    assert manager.approve("p") is PluginState.ACTIVE
    assert manager.render("p", 20, 3).elements == [{"type": "text", "text": "new"}]
    assert enqueue_allowed(host, "p", "1.0.0", new.sha256)


def test_an_update_signed_by_the_same_trusted_key_keeps_its_grants(
    host: Host, tmp_path: Path
) -> None:
    acme = key(host, tmp_path, "acme")
    first = release(host, tmp_path, "1.0.0", acme)
    manager = host.started()
    (pending,) = manager.pending_approvals()  # the first version is asked about once
    assert pending.review.signer is not None and pending.review.signer.name == "acme"
    assert manager.approve("p") is PluginState.ACTIVE
    old = open_bundle(first, extract_dir=tmp_path / "x")

    update = release(host, tmp_path, "1.1.0", acme)
    result = manager.reload("p")
    assert result.ok, result.reason
    assert manager.status("p").version == "1.1.0"
    assert manager.pending_approvals() == []
    new = open_bundle(update, extract_dir=tmp_path / "x")
    assert enqueue_allowed(host, "p", "1.1.0", new.sha256)
    grants = {g.binding: g.signer for g in manager.grants.grants_for("p")}
    assert grants[("1.1.0", new.sha256)] == grants[("1.0.0", old.sha256)]


def test_an_update_signed_by_another_key_waits_for_approval(host: Host, tmp_path: Path) -> None:
    acme = key(host, tmp_path, "acme")
    other = key(host, tmp_path, "other")  # trusted too, but not the key that was granted
    release(host, tmp_path, "1.0.0", acme)
    manager = host.started()
    assert manager.approve("p") is PluginState.ACTIVE
    release(host, tmp_path, "1.1.0", other)
    result = manager.reload("p")
    assert not result.ok and "awaits approval" in result.reason
    (pending,) = manager.pending_approvals()
    (item,) = pending.review.items
    assert "signed by acme" in item.reason and "signed by other" in item.reason
    assert manager.status("p").version == "1.0.0"


def test_a_key_no_longer_trusted_carries_no_grants(host: Host, tmp_path: Path) -> None:
    acme = key(host, tmp_path, "acme")
    release(host, tmp_path, "1.0.0", acme)
    manager = host.started()
    manager.approve("p")
    assert manager.state("p") is PluginState.ACTIVE
    TrustStore.from_settings(host.settings).remove("acme")
    release(host, tmp_path, "1.1.0", acme)
    result = manager.reload("p")
    assert not result.ok and "awaits approval" in result.reason
    (pending,) = manager.pending_approvals()
    assert "no longer trusted" in pending.review.items[0].reason
    assert manager.state("p") is PluginState.ACTIVE and manager.status("p").version == "1.0.0"
