"""``publish``: a packed bundle added to a directory registry, atomically and under a lock."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from plugin_registry import make_bundle
from rwq.plugins.package.bundle import BundleError
from rwq.plugins.registry.errors import RegistryError
from rwq.plugins.registry.publish import publish
from rwq.plugins.trust.signing import generate_key, sign_bundle


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    root.mkdir()
    return root


def _index(registry: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((registry / "index.json").read_text())


def test_publish_copies_the_bundle_and_records_it(tmp_path: Path, registry: Path) -> None:
    bundle = make_bundle(tmp_path, "alerts", "1.2.0", {"store": "^1"}, description="Alerts")
    done = publish(bundle, registry, tmp_path / "x")
    assert done.added and done.signer is None
    assert done.bundle == registry / "bundles/alerts/alerts-1.2.0.zip"
    assert done.bundle.read_bytes() == bundle.read_bytes()
    entry = _index(registry)["plugins"]["alerts"]
    assert entry["description"] == "Alerts" and entry["publisher"] == "registry tests"
    release = entry["versions"]["1.2.0"]
    assert release["bundle"] == "bundles/alerts/alerts-1.2.0.zip"
    assert release["size"] == bundle.stat().st_size
    assert release["dependencies"] == {"store": "^1"} and release["api_version"] == "v1"

    again = publish(bundle, registry, tmp_path / "x")  # the same bytes: nothing to do
    assert not again.added


def test_a_published_version_is_never_replaced(tmp_path: Path, registry: Path) -> None:
    publish(make_bundle(tmp_path / "a", "alerts", "1.0.0"), registry, tmp_path / "x")
    before = (registry / "index.json").read_bytes()
    other = make_bundle(tmp_path / "b", "alerts", "1.0.0", extra=b"changed")
    with pytest.raises(RegistryError, match=r"alerts 1\.0\.0 is published already with other"):
        publish(other, registry, tmp_path / "x")
    assert (registry / "index.json").read_bytes() == before


def test_an_older_version_keeps_the_newest_description(tmp_path: Path, registry: Path) -> None:
    publish(make_bundle(tmp_path / "a", "p", "2.0.0", description="New"), registry, tmp_path / "x")
    publish(make_bundle(tmp_path / "b", "p", "1.0.0", description="Old"), registry, tmp_path / "x")
    entry = _index(registry)["plugins"]["p"]
    assert entry["description"] == "New" and set(entry["versions"]) == {"1.0.0", "2.0.0"}


def test_the_signer_is_recorded(tmp_path: Path, registry: Path) -> None:
    bundle = make_bundle(tmp_path, "signed", "1.0.0")
    key = generate_key(tmp_path / "acme", "acme")
    sign_bundle(bundle, tmp_path / "acme", None, "acme")
    done = publish(bundle, registry, tmp_path / "x")
    signer = _index(registry)["plugins"]["signed"]["versions"]["1.0.0"]["signer"]
    assert signer == {"name": "acme", "fingerprint": key.fingerprint}
    assert done.signer is not None and done.signer.fingerprint == key.fingerprint


def test_only_packed_zips_are_published(tmp_path: Path, registry: Path) -> None:
    bundle = make_bundle(tmp_path, "p", "1.0.0")
    with pytest.raises(RegistryError, match=r"publish takes a \.zip bundle"):
        publish(tmp_path / "src" / "p-1.0.0", registry, tmp_path / "x")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RegistryError, match="a-file: not a directory"):
        publish(bundle, tmp_path / "a-file", tmp_path / "x")
    assert publish(bundle, tmp_path / "new" / "registry", tmp_path / "x").name == "p"
    assert (tmp_path / "new" / "registry" / "index.json").is_file()  # the first publish made it
    (registry / "index.json").write_text("{broken")
    with pytest.raises(RegistryError, match=r"index\.json is not JSON"):
        publish(bundle, registry, tmp_path / "x")


def test_a_bundle_with_a_broken_signature_is_refused(tmp_path: Path, registry: Path) -> None:
    import zipfile

    bundle = make_bundle(tmp_path, "p", "1.0.0")
    with zipfile.ZipFile(bundle, "a") as archive:
        archive.writestr("SIGNATURE.json", '{"algorithm": "ed25519"}')
    with pytest.raises(BundleError, match="its signature does not verify"):
        publish(bundle, registry, tmp_path / "x")


def test_concurrent_publishers_each_add_their_version(tmp_path: Path, registry: Path) -> None:
    bundles = [make_bundle(tmp_path / str(n), "p", f"1.0.{n}") for n in range(8)]
    errors: list[BaseException] = []

    def run(bundle: Path) -> None:
        try:
            publish(bundle, registry, tmp_path / "x")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(_index(registry)["plugins"]["p"]["versions"]) == {f"1.0.{n}" for n in range(8)}
