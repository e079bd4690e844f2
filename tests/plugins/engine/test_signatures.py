"""``plugin_signatures``: what a plugin's signature lets it do when it loads — off, warn,
require — and its signature shown in the plugin's snapshot and approval request."""

from __future__ import annotations

import shutil
from pathlib import Path

from manager_host import Host, write_plugin

from rwq.plugins.engine.lifecycle import PluginState
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.package.pack import pack
from rwq.plugins.trust.signing import TrustStore, generate_key, sign_bundle


def signed(host: Host, tmp_path: Path, name: str, *, trust: bool) -> None:
    """``name`` packed, signed by acme and placed in the plugins dir (acme trusted if asked)."""
    source = write_plugin(tmp_path / "src", name)
    bundle = pack(source, tmp_path / "dist")
    key = tmp_path / "acme"
    if not key.exists():
        publisher = generate_key(key, "acme")
        if trust:
            TrustStore.from_settings(host.settings).add(publisher)
    sign_bundle(bundle, key, None, "acme")
    shutil.copy(bundle, host.root / f"{name}.zip")


def test_warn_loads_an_unsigned_plugin_and_says_so(host: Host) -> None:
    write_plugin(host.root, "plain")
    manager = host.started()
    assert manager.state("plain") is PluginState.ACTIVE
    (snap,) = manager.snapshot()
    assert snap.signature is not None and str(snap.signature) == "unsigned: no signature"


def test_require_refuses_unsigned_and_untrusted_plugins_naming_why(
    host: Host, tmp_path: Path
) -> None:
    host.settings = host.settings.replace(plugin_signatures="require")
    write_plugin(host.root, "plain")
    signed(host, tmp_path, "stranger", trust=False)
    manager = host.started()
    assert manager.state("plain") is PluginState.ERROR
    assert manager.reason("plain") == (
        "plugin_signatures is require and plain is unsigned: no signature"
    )
    assert manager.state("stranger") is PluginState.ERROR
    assert "stranger is signed by acme (sha256:" in manager.reason("stranger")
    assert manager.reason("stranger").endswith(", not trusted)")


def test_require_loads_a_plugin_signed_by_a_trusted_key(host: Host, tmp_path: Path) -> None:
    host.settings = host.settings.replace(plugin_signatures="require")
    signed(host, tmp_path, "trusted", trust=True)
    manager = host.started()
    assert manager.state("trusted") is PluginState.ACTIVE
    (snap,) = manager.snapshot()
    assert snap.signature is not None and snap.signature.trusted
    assert snap.signature.signer == "acme"


def test_off_does_not_look(host: Host) -> None:
    host.settings = host.settings.replace(plugin_signatures="off")
    write_plugin(host.root, "plain")
    manager = host.started()
    assert manager.state("plain") is PluginState.ACTIVE
    assert manager.snapshot()[0].signature is None


def test_an_approval_request_shows_the_signature(host: Host, tmp_path: Path) -> None:
    write_plugin(host.root, "asks", permissions=["ui.notifications"])
    manager = host.started()
    (pending,) = manager.pending_approvals()
    assert pending.signature is not None and pending.signature.state == "unsigned"


def test_require_keeps_an_unsigned_new_version_from_replacing_a_signed_one(
    host: Host, tmp_path: Path
) -> None:
    host.settings = host.settings.replace(plugin_signatures="require")
    signed(host, tmp_path, "trusted", trust=True)
    manager = host.started()
    assert manager.state("trusted") is PluginState.ACTIVE
    unsigned = write_plugin(tmp_path / "next", "trusted", version="1.1.0")
    result = manager.replace("trusted", open_bundle(unsigned))
    assert not result.ok and "require and trusted is unsigned" in result.reason
    assert manager.state("trusted") is PluginState.ACTIVE  # the signed version keeps running
    assert manager.snapshot()[0].signature.trusted  # type: ignore[union-attr]
