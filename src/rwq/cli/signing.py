"""``rwq plugin keygen|sign|verify`` and ``rwq plugin trust add|list|remove``: publisher keys,
signed bundles and the keys this user trusts."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rwq.cli.context import JsonFlag, out
from rwq.cli.plugin import _settings, plugin_app
from rwq.plugins.trust.signing import (
    SigningError,
    TrustStore,
    bundle_signature,
    check_private_key_file,
    generate_key,
    read_public_key,
    sign_bundle,
)
from rwq.printable import print_json

trust_app = typer.Typer(help="The publisher keys you trust.", no_args_is_help=True)
plugin_app.add_typer(trust_app, name="trust")

PASSPHRASE_VARIABLE = "RWQ_KEY_PASSPHRASE"


def _passphrase(ask: bool, *, twice: bool) -> bytes | None:
    """From ``RWQ_KEY_PASSPHRASE``, else asked for on a terminal when ``ask``."""
    given = os.environ.get(PASSPHRASE_VARIABLE)
    if given:
        return given.encode()
    if not ask:
        return None
    if not sys.stdin.isatty():
        raise SigningError(f"--passphrase needs a terminal to ask on, or {PASSPHRASE_VARIABLE}")
    text: str = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=twice)
    return text.encode() or None


@plugin_app.command("keygen")
def keygen_cmd(
    key: Annotated[Path, typer.Argument(help="Where to write the private key (KEY.pub: public).")],
    name: Annotated[str, typer.Option("--name", help="The publisher name signatures carry.")],
    passphrase: Annotated[
        bool,
        typer.Option(
            "--passphrase", help=f"Encrypt the key (asked for, or {PASSPHRASE_VARIABLE})."
        ),
    ] = False,
) -> None:
    """Make a publisher key pair (ed25519): the private key readable by you only."""
    publisher = generate_key(key, name, _passphrase(passphrase, twice=True))
    out.print(f"wrote {key} (private, mode 600) and {key}.pub for {name} ({publisher.fingerprint})")
    out.print(f"others trust it with: rwq plugin trust add {key}.pub")


@plugin_app.command("sign")
def sign_cmd(
    bundle: Annotated[Path, typer.Argument(help="A zip bundle made by rwq plugin pack.")],
    key: Annotated[Path, typer.Option("--key", help="Your private key (rwq plugin keygen).")],
    name: Annotated[
        str | None, typer.Option("--name", help="Publisher name (default: from KEY.pub).")
    ] = None,
    passphrase: Annotated[
        bool,
        typer.Option("--passphrase", help=f"Ask for the key's passphrase ({PASSPHRASE_VARIABLE})."),
    ] = False,
) -> None:
    """Sign a packed bundle: the signature covers its file list, name and version."""
    check_private_key_file(key)
    signer = name
    if signer is None:
        public = key.with_name(key.name + ".pub")
        if not public.is_file():
            raise SigningError(f"{public} is missing: give the publisher name with --name")
        signer = read_public_key(public).name
    publisher = sign_bundle(bundle, key, _passphrase(passphrase, twice=False), signer)
    out.print(f"signed {bundle} as {signer} ({publisher.fingerprint})")


@plugin_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A plugin directory or .zip bundle.")],
    as_json: JsonFlag = False,
) -> None:
    """Check a bundle's files against its file list and its signature against its publisher
    key; exit 1 unless it is signed and the signature holds (a file changed, added or removed
    since it was signed: "modified since signed")."""
    from rwq.plugins.package.bundle import BundleModified, open_bundle
    from rwq.plugins.package.paths import PluginPaths

    settings = _settings(ctx)
    try:
        opened = open_bundle(bundle, extract_dir=PluginPaths(settings).extracted)
    except BundleModified as exc:
        state = "modified since signed" if exc.signed else "modified since packed"
        if as_json:
            print_json({"bundle": str(bundle), "state": state, "reason": exc.reason}, out.file)
        else:
            out.print(f"{bundle}: {state}: {exc.reason}")
        raise typer.Exit(1) from None
    status = bundle_signature(
        opened.root,
        opened.files,
        opened.name,
        str(opened.version),
        TrustStore.from_settings(settings),
    )
    if as_json:
        print_json({"bundle": str(bundle), "plugin": opened.name, "version": str(opened.version),
                    "state": status.state, "signer": status.signer,
                    "fingerprint": status.fingerprint, "trusted": status.trusted,
                    "reason": status.reason}, out.file)  # fmt: skip
    else:
        out.print(f"{opened.name} {opened.version}: {status}")
    if status.state != "signed":
        raise typer.Exit(1)


@trust_app.command("add")
def trust_add_cmd(
    ctx: typer.Context,
    key: Annotated[Path, typer.Argument(help="A publisher's public key file (KEY.pub).")],
) -> None:
    """Trust a publisher's key: plugins it signed show as signed by a trusted publisher."""
    publisher = read_public_key(key)
    added = TrustStore.from_settings(_settings(ctx)).add(publisher)
    said = "now trusted" if added else "already trusted"
    out.print(f"{publisher.name} ({publisher.fingerprint}): {said}")


@trust_app.command("list")
def trust_list_cmd(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The publisher keys you trust."""
    keys = TrustStore.from_settings(_settings(ctx)).keys()
    if as_json:
        print_json([{"name": k.name, "fingerprint": k.fingerprint} for k in keys], out.file)
        return
    for k in keys:
        out.print(f"{k.name}  {k.fingerprint}")
    if not keys:
        out.print("no trusted keys (rwq plugin trust add KEY.pub)")


@trust_app.command("remove")
def trust_remove_cmd(
    ctx: typer.Context,
    which: Annotated[str, typer.Argument(help="A publisher name or fingerprint (sha256:...).")],
) -> None:
    """Stop trusting a publisher's key."""
    for k in TrustStore.from_settings(_settings(ctx)).remove(which):
        out.print(f"{k.name} ({k.fingerprint}): no longer trusted")
