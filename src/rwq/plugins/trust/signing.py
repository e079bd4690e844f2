"""Publisher keys and bundle signatures: ed25519 over a packed bundle's file list (with its name
and version), so a changed file invalidates the signature; the keys a user trusts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rwq.atomic_file import PUBLIC_FILE, write_atomically
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.package.file_list import FILE_LIST, SIGNATURE
from rwq.plugins.package.pack import zip_entry
from rwq.plugins.trust.grant_file import Signer

__all__ = [
    "PublisherKey",
    "SignaturePolicy",
    "SignatureStatus",
    "SigningError",
    "TrustStore",
    "bundle_signature",
    "check_private_key_file",
    "generate_key",
    "read_public_key",
    "sign_bundle",
]

PUBLIC_PREFIX = "rwq-ed25519"
"""A public key file is one line: ``rwq-ed25519 <base64 of the 32 key bytes> <publisher name>``."""
_CONTEXT = b"rwq bundle signature v1\n"
"""What every signed message starts with (a signature made for something else never fits)."""


class SigningError(RwqError):
    """A key or signature cannot be made, read or used; says which file and why."""


@dataclass(frozen=True)
class PublisherKey:
    """A publisher's public key and the name it goes by."""

    name: str
    public: bytes
    """The 32 raw ed25519 key bytes."""

    @property
    def fingerprint(self) -> str:
        """``sha256:`` and the first 32 hex digits of the key's SHA-256."""
        return "sha256:" + hashlib.sha256(self.public).hexdigest()[:32]

    def line(self) -> str:
        return f"{PUBLIC_PREFIX} {base64.b64encode(self.public).decode()} {self.name}\n"


@dataclass(frozen=True)
class SignatureStatus:
    """What a bundle's signature says, for every place a plugin is shown."""

    state: Literal["unsigned", "invalid", "signed"]
    signer: str = ""
    fingerprint: str = ""
    trusted: bool = False
    reason: str = ""

    @property
    def publisher(self) -> Signer | None:
        """The key whose valid signature the bundle carries (trusted or not); None when it is
        unsigned or the signature is invalid."""
        return Signer(self.signer, self.fingerprint) if self.state == "signed" else None

    def __str__(self) -> str:
        if self.state == "signed":
            trust = "trusted" if self.trusted else "not trusted"
            return f"signed by {self.signer} ({self.fingerprint}, {trust})"
        return f"{self.state}: {self.reason}" if self.reason else self.state


# -- keys ------------------------------------------------------------------------------------


def generate_key(path: Path, name: str, passphrase: bytes | None = None) -> PublisherKey:
    """Write a new private key to ``path`` (mode 0600, encrypted with ``passphrase`` if given)
    and its public key to ``path`` + ``.pub``.

    Raises:
        SigningError: a file is there already, or cannot be written.
    """
    if not name or any(c.isspace() for c in name) or not name.isprintable():
        raise SigningError(f"--name: a publisher name is one word of printable text, got {name!r}")
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists():
            raise SigningError(
                f"{existing} exists: choose another path (keys are never overwritten)"
            )
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    publisher = PublisherKey(name, _raw(key.public_key()))
    try:
        _make_private_dirs(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public_path.write_text(publisher.line(), encoding="utf-8")
    except OSError as exc:
        raise SigningError(
            f"{exc.filename or path}: cannot write the key: {exc.strerror}"
        ) from None
    return publisher


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each readable by its owner only (mode
    0700: they hold a private key); existing ones are left as they are."""
    missing: list[Path] = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for made in reversed(missing):
        made.mkdir(mode=0o700)


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_private_key_file(path: Path) -> None:
    """Refuse, before it is read, a private key path that does not exist or is a public key.

    Raises:
        SigningError: says which, and for a public key which file the private key is.
    """
    if not path.exists():
        raise SigningError(f"--key {path}: the private key file does not exist")
    try:
        with path.open("rb") as fh:
            start = fh.read(len(PUBLIC_PREFIX) + 1)
    except OSError:
        return  # reading it says why
    if start == PUBLIC_PREFIX.encode() + b" ":
        private = (
            f"{path.name.removesuffix('.pub')}, without .pub"
            if path.name.endswith(".pub")
            else "the file rwq plugin keygen wrote beside KEY.pub"
        )
        raise SigningError(
            f"--key {path}: that is a public key; --key takes the private key ({private})"
        )


def load_private_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    """The private key at ``path``.

    Raises:
        SigningError: unreadable, readable by others, not an ed25519 key, or the passphrase
            is missing or wrong.
    """
    check_private_key_file(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the key: {exc.strerror}") from None
    if mode & 0o077:
        raise SigningError(f"{path}: a private key must be readable by its owner only (chmod 600)")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError:
        raise SigningError(
            f"{path}: the key is encrypted: give its passphrase (RWQ_KEY_PASSPHRASE)"
            if not passphrase
            else f"{path}: the key is not encrypted: give no passphrase"
        ) from None
    except ValueError:
        raise SigningError(f"{path}: not a private key, or the passphrase is wrong") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path}: not an ed25519 key")
    return key


def read_public_key(path: Path) -> PublisherKey:
    """The public key file at ``path`` (as ``rwq plugin keygen`` writes it).

    Raises:
        SigningError: unreadable or not such a line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SigningError(f"{path} does not exist") from None
    except OSError as exc:
        raise SigningError(f"{path}: cannot read the public key: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SigningError(f"{path}: not a public key (not text)") from None
    return _parse_public(text.strip(), str(path))


def _parse_public(text: str, where: str) -> PublisherKey:
    parts = text.split(" ")
    if len(parts) != 3 or parts[0] != PUBLIC_PREFIX:
        raise SigningError(f"{where}: expected '{PUBLIC_PREFIX} <key> <name>'")
    raw = _b64(parts[1], where, "key")
    if len(raw) != 32:
        raise SigningError(f"{where}: an ed25519 public key is 32 bytes, got {len(raw)}")
    return PublisherKey(parts[2], raw)


def _b64(text: str, where: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"{where}: {what} is not base64") from None


# -- signatures ------------------------------------------------------------------------------


def _message(plugin: str, version: str, file_list: bytes) -> bytes:
    return _CONTEXT + plugin.encode() + b"\n" + version.encode() + b"\n" + file_list


def sign_bundle(
    bundle: Path, key_path: Path, passphrase: bytes | None, signer: str
) -> PublisherKey:
    """Sign the packed bundle (a zip ``rwq plugin pack`` made) in place: its file list, name
    and version, with the key at ``key_path``, as ``signer``. A signature already there is
    replaced. Returns the signer's public key.

    Raises:
        SigningError: not a packed zip bundle, or the key cannot be used.
    """
    key = load_private_key(key_path, passphrase)
    publisher = PublisherKey(signer, _raw(key.public_key()))
    try:
        with zipfile.ZipFile(bundle) as archive:
            names = archive.namelist()
            if FILE_LIST not in names:
                raise SigningError(f"{bundle}: no {FILE_LIST}: pack it first (rwq plugin pack)")
            listing = archive.read(FILE_LIST)
            plugin, version = _name_and_version(bundle, archive)
            kept = [
                (info, archive.read(info))
                for info in archive.infolist()
                if info.filename != SIGNATURE
            ]
    except (OSError, zipfile.BadZipFile) as exc:
        raise SigningError(f"{bundle}: not a zip bundle: {exc}") from None
    document = {
        "format": 1,
        "algorithm": "ed25519",
        "plugin": plugin,
        "version": version,
        "signer": signer,
        "public_key": base64.b64encode(publisher.public).decode(),
        "signed_at": int(time.time()),
        "signature": base64.b64encode(key.sign(_message(plugin, version, listing))).decode(),
    }
    signed = io.BytesIO()
    with zipfile.ZipFile(signed, "w") as out:
        for info, data in kept:
            out.writestr(info, data)
        out.writestr(zip_entry(SIGNATURE), json.dumps(document, indent=2, sort_keys=True) + "\n")
    try:
        write_atomically(bundle, signed.getvalue(), mode=PUBLIC_FILE)
    except OSError as exc:
        raise SigningError(f"{bundle}: cannot write the signed bundle: {exc.strerror}") from None
    return publisher


def _name_and_version(bundle: Path, archive: zipfile.ZipFile) -> tuple[str, str]:
    from rwq.plugins.package.manifest import parse_manifest_yaml

    manifest_name = next(
        (n for n in ("manifest.yaml", "manifest.yml") if n in archive.namelist()), None
    )
    if manifest_name is None:
        raise SigningError(f"{bundle}: no manifest.yaml")
    manifest = parse_manifest_yaml(archive.read(manifest_name), f"{bundle}!{manifest_name}")
    return manifest.name, str(manifest.version)


def bundle_signature(
    root: Path, files: tuple[str, ...], plugin: str, version: str, trust: TrustStore | None = None
) -> SignatureStatus:
    """What the signature of a bundle (its ``files`` under ``root``, already checked against
    its file list when it was opened) says."""
    if SIGNATURE not in files:
        return SignatureStatus("unsigned", reason="no signature")
    if FILE_LIST not in files:
        return SignatureStatus("invalid", reason=f"signed but has no {FILE_LIST}")
    try:
        document = json.loads((root / SIGNATURE).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("algorithm") != "ed25519":
            raise ValueError("not an ed25519 signature")
        signer = str(document["signer"])
        public = _b64(str(document["public_key"]), SIGNATURE, "public_key")
        signature = _b64(str(document["signature"]), SIGNATURE, "signature")
        publisher = PublisherKey(signer, public)
        Ed25519PublicKey.from_public_bytes(public).verify(
            signature, _message(plugin, version, (root / FILE_LIST).read_bytes())
        )
    except InvalidSignature:
        return SignatureStatus("invalid", reason="the signature does not match the bundle")
    except (OSError, ValueError, KeyError, TypeError, SigningError) as exc:
        return SignatureStatus("invalid", reason=f"{SIGNATURE}: {exc}")
    known = trust.find(publisher.fingerprint) if trust is not None else None
    return SignatureStatus(
        "signed",
        signer=known.name if known is not None else publisher.name,
        fingerprint=publisher.fingerprint,
        trusted=known is not None,
    )


@dataclass(frozen=True)
class SignaturePolicy:
    """What ``plugin_signatures`` lets load: ``off``, ``warn`` or ``require`` (see
    :class:`rwq.config.Settings`), judged against the trusted keys."""

    mode: str
    trust: TrustStore

    @classmethod
    def from_settings(cls, settings: Settings) -> SignaturePolicy:
        return cls(settings.plugin_signatures, TrustStore.from_settings(settings))

    def judge(
        self, root: Path, files: tuple[str, ...], plugin: str, version: str
    ) -> tuple[SignatureStatus | None, str]:
        """The bundle's signature status (None when ``off``) and why it may not load ("" when
        it may)."""
        if self.mode == "off":
            return None, ""
        status = self.status(root, files, plugin, version)
        if self.mode == "require" and not (status.state == "signed" and status.trusted):
            return status, f"plugin_signatures is require and {plugin} is {status}"
        return status, ""

    def status(
        self, root: Path, files: tuple[str, ...], plugin: str, version: str
    ) -> SignatureStatus:
        """The bundle's signature status whatever the mode (grants are bound to the signer
        even when ``plugin_signatures`` is ``off``)."""
        try:
            return bundle_signature(root, files, plugin, version, self.trust)
        except SigningError as exc:  # the trust store itself is unreadable
            return SignatureStatus("invalid", reason=str(exc))


# -- the trust store -------------------------------------------------------------------------


class TrustStore:
    """The publisher keys a user trusts, in one JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustStore:
        """The trusted keys of ``settings``: ``<state_dir>/plugins/trusted-keys.json``."""
        return cls(settings.state_dir / "plugins" / "trusted-keys.json")

    def keys(self) -> list[PublisherKey]:
        """Every trusted key, in the order added.

        Raises:
            SigningError: the file is not a trust store.
        """
        try:
            data: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise SigningError(f"{self.path}: not a trust store: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise SigningError(f"{self.path}: not a trust store: expected {{'keys': [...]}}")
        return [_parse_public(str(line), str(self.path)) for line in data["keys"]]

    def find(self, fingerprint: str) -> PublisherKey | None:
        return next((k for k in self.keys() if k.fingerprint == fingerprint), None)

    def add(self, key: PublisherKey) -> bool:
        """Trust ``key``; False when it was trusted already."""
        keys = self.keys()
        if any(k.fingerprint == key.fingerprint for k in keys):
            return False
        self._write([*keys, key])
        return True

    def remove(self, which: str) -> list[PublisherKey]:
        """Stop trusting the keys named ``which`` or whose fingerprint starts with it.

        Raises:
            SigningError: no key matches.
        """
        keys = self.keys()
        prefix = which.startswith("sha256:") and len(which) > len("sha256:") + 3
        gone = [
            k
            for k in keys
            if which in (k.name, k.fingerprint) or (prefix and k.fingerprint.startswith(which))
        ]
        if not gone:
            listed = ", ".join(f"{k.name} ({k.fingerprint})" for k in keys) or "none"
            raise SigningError(f"no trusted key named {which!r} (trusted: {listed})")
        self._write([k for k in keys if k not in gone])
        return gone

    def _write(self, keys: list[PublisherKey]) -> None:
        text = json.dumps({"format": 1, "keys": [k.line().strip() for k in keys]}, indent=2) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise SigningError(
                f"{self.path}: cannot write the trusted keys: {exc.strerror}"
            ) from None
