"""Publisher keys, signed bundles and the trust store: a signature holds for the bundle it was
made for and nothing else; keys are private, never overwritten, and their passphrase needed."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from rwq.plugins.package.bundle import BundleError, open_bundle
from rwq.plugins.package.file_list import SIGNATURE
from rwq.plugins.package.pack import pack
from rwq.plugins.trust.signing import (
    SigningError,
    TrustStore,
    bundle_signature,
    generate_key,
    read_public_key,
    sign_bundle,
)

HELLO = Path(__file__).parents[3] / "sdk" / "starlark" / "hello"


def status(bundle_path: Path, tmp_path: Path, trust: TrustStore | None = None) -> object:
    bundle = open_bundle(bundle_path, extract_dir=tmp_path / "x")
    return bundle_signature(bundle.root, bundle.files, bundle.name, str(bundle.version), trust)


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    return pack(HELLO, tmp_path / "out")


def test_a_key_pair_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key = tmp_path / "acme"
    publisher = generate_key(key, "acme")
    assert key.stat().st_mode & 0o777 == 0o600
    assert read_public_key(tmp_path / "acme.pub") == publisher
    assert publisher.fingerprint.startswith("sha256:") and len(publisher.fingerprint) == 39
    with pytest.raises(SigningError, match="exists: choose another path"):
        generate_key(key, "other")
    assert read_public_key(tmp_path / "acme.pub") == publisher  # untouched
    with pytest.raises(SigningError, match="--name"):
        generate_key(tmp_path / "bad", "two words")


def test_a_signed_bundle_says_who_signed_it_and_whether_they_are_trusted(
    packed: Path, tmp_path: Path
) -> None:
    assert str(status(packed, tmp_path)) == "unsigned: no signature"
    publisher = generate_key(tmp_path / "acme", "acme")
    sign_bundle(packed, tmp_path / "acme", None, "acme")
    trust = TrustStore(tmp_path / "trusted.json")
    signed = status(packed, tmp_path, trust)
    assert str(signed) == f"signed by acme ({publisher.fingerprint}, not trusted)"
    assert trust.add(publisher) and not trust.add(publisher)
    assert str(status(packed, tmp_path, trust)).endswith(", trusted)")
    assert trust.remove("acme") == [publisher] and trust.keys() == []


def test_a_bundle_changed_after_signing_is_refused_or_invalid(packed: Path, tmp_path: Path) -> None:
    generate_key(tmp_path / "acme", "acme")
    sign_bundle(packed, tmp_path / "acme", None, "acme")
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(packed) as archive:
        archive.extractall(unpacked)
    (unpacked / "main.star").write_text("# not what was signed\n")
    with pytest.raises(BundleError, match=r"main\.star changed since it was packed"):
        open_bundle(unpacked)
    # packed again with a new file list, the old signature beside it: it no longer holds
    repacked = tmp_path / "re"
    shutil.copytree(unpacked, repacked)
    (repacked / "FILES.sha256").unlink()
    (repacked / SIGNATURE).unlink()
    forged = pack(repacked, tmp_path / "forged")
    with zipfile.ZipFile(packed) as original, zipfile.ZipFile(forged, "a") as out:
        out.writestr(SIGNATURE, original.read(SIGNATURE))  # the old signature, new files
    result = status(forged, tmp_path)
    assert str(result) == "invalid: the signature does not match the bundle"


def test_a_signature_made_for_another_plugin_or_version_does_not_fit(
    packed: Path, tmp_path: Path
) -> None:
    generate_key(tmp_path / "acme", "acme")
    sign_bundle(packed, tmp_path / "acme", None, "acme")
    bundle = open_bundle(packed, extract_dir=tmp_path / "x")
    other = bundle_signature(bundle.root, bundle.files, "other-plugin", str(bundle.version))
    assert other.state == "invalid"
    later = bundle_signature(bundle.root, bundle.files, bundle.name, "9.9.9")
    assert later.state == "invalid"


def test_a_malformed_signature_is_invalid_naming_it(packed: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(packed, "a") as archive:
        archive.writestr(SIGNATURE, json.dumps({"algorithm": "ed25519", "signer": "x"}))
    result = status(packed, tmp_path)
    assert result.state == "invalid" and SIGNATURE in result.reason  # type: ignore[attr-defined]


def test_an_encrypted_key_needs_its_passphrase(packed: Path, tmp_path: Path) -> None:
    generate_key(tmp_path / "bob", "bob", b"s3cret")
    with pytest.raises(SigningError, match="encrypted: give its passphrase"):
        sign_bundle(packed, tmp_path / "bob", None, "bob")
    with pytest.raises(SigningError, match="passphrase is wrong"):
        sign_bundle(packed, tmp_path / "bob", b"wrong", "bob")
    sign_bundle(packed, tmp_path / "bob", b"s3cret", "bob")
    assert status(packed, tmp_path).state == "signed"  # type: ignore[attr-defined]


def test_a_key_readable_by_others_is_refused(packed: Path, tmp_path: Path) -> None:
    generate_key(tmp_path / "acme", "acme")
    (tmp_path / "acme").chmod(0o644)
    with pytest.raises(SigningError, match="readable by its owner only"):
        sign_bundle(packed, tmp_path / "acme", None, "acme")


def test_only_a_packed_bundle_can_be_signed(tmp_path: Path) -> None:
    generate_key(tmp_path / "acme", "acme")
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        for path in HELLO.iterdir():
            archive.write(path, path.name)
    with pytest.raises(SigningError, match=r"no FILES\.sha256: pack it first"):
        sign_bundle(plain, tmp_path / "acme", None, "acme")
