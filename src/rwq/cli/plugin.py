"""``rwq plugin``: validate, list, install, grant, revoke and audit plugins; run them headless
and reload them in the running hosts."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rwq.cli.table import TableColumn, fitted_table
from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.package.paths import PluginPaths, with_plugin_dirs
from rwq.printable import PlainConsole, marked, print_json
from rwq.units import counted, parse_duration

if TYPE_CHECKING:
    from rwq.plugins.ops.control import ControlResult
    from rwq.plugins.package.bundle import Bundle
    from rwq.plugins.trust.audit import AuditLog
    from rwq.plugins.trust.grants import GrantStore

# The plugin modules are imported inside the commands: `rwq worker` and friends should not
# pay for (or depend on) the plugin system.

plugin_app = typer.Typer(help="Manage plugins and their permissions.", no_args_is_help=True)

out = PlainConsole()
err = PlainConsole(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PluginsDir = Annotated[
    list[Path] | None,
    typer.Option(
        "--plugins-dir",
        help="Also host the plugins of this directory (repeat); besides the setting "
        "plugin_dirs and your installed plugins, nothing else is searched.",
    ),
]
HostPlugins = Annotated[
    bool, typer.Option("--plugins/--no-plugins", help="Host the installed plugins.")
]
PolicyFile = Annotated[
    Path | None,
    typer.Option("--policy", help="Pre-grant plugin permissions from this policy file."),
]
WatchPlugins = Annotated[
    bool, typer.Option("--watch/--no-watch", help="Hot-reload plugins changed on disk.")
]


class PluginCliError(RwqError):
    """A plugin command was given something it cannot act on."""


def _settings(ctx: typer.Context) -> Settings:
    settings = getattr(ctx.obj, "settings", None)
    assert isinstance(settings, Settings)
    return settings


def _store(settings: Settings) -> tuple[GrantStore, AuditLog]:
    from rwq.plugins.trust.audit import AuditLog
    from rwq.plugins.trust.grants import GrantStore

    log = AuditLog.from_settings(settings)
    return GrantStore.from_settings(settings, audit=log), log


def _find(settings: Settings, name: str) -> Bundle:
    from rwq.plugins.package.discovery import discover

    paths = PluginPaths(settings)
    found = discover(paths.search, paths.extracted)
    for bundle in found.bundles:
        if bundle.name == name:
            return bundle
    known = ", ".join(sorted(b.name for b in found.bundles)) or "none"
    where = ", ".join(str(p) for p in paths.search)
    raise PluginCliError(f"no plugin named {name!r} in {where} (found: {known})")


@plugin_app.command("validate")
def validate_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A plugin directory or .zip bundle.")],
    as_json: JsonFlag = False,
) -> None:
    """Check one plugin's manifest and bundle (dependencies resolve when plugins load)."""
    from rwq.plugins.package.bundle import open_bundle

    bundle = open_bundle(path, extract_dir=PluginPaths(_settings(ctx)).extracted)
    m = bundle.manifest
    info = {
        "name": m.name,
        "version": str(m.version),
        "runtime": m.runtime,
        "entry_point": str(bundle.entry_point),
        "sha256": bundle.sha256,
        "permissions": list(m.requested_permissions()),
        "dependencies": [d.name for d in m.dependencies],
    }
    if as_json:
        print_json({"valid": True, **info}, out.file)
    else:
        out.print(f"{m.name} {m.version} ({m.runtime}) is valid; sha256 {bundle.sha256[:16]}…")


@plugin_app.command("pack")
def pack_cmd(
    path: Annotated[Path, typer.Argument(help="A plugin directory.")],
    out_dir: Annotated[
        Path, typer.Option("-o", "--out", help="Where to write NAME-VERSION.zip.")
    ] = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Pack a plugin directory into a reproducible zip bundle (sorted entries, fixed times and
    modes) with a list of every file's SHA-256 inside (FILES.sha256)."""
    import hashlib

    from rwq.plugins.package.pack import pack
    from rwq.toolkit.build import dev_module

    module = dev_module(path)
    if module is not None:
        raise PluginCliError(
            f"{module} is a development build (rwq plugin dev builds unoptimized): "
            f"run rwq plugin build {path} first"
        )
    target = pack(path, out_dir)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if as_json:
        print_json({"bundle": str(target), "sha256": digest}, out.file)
    else:
        out.print(f"packed {target} (sha256 {digest})")


@plugin_app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Installed plugins, their load order, signature and permission state."""
    from rwq.plugins.package.discovery import discover, load_order
    from rwq.plugins.trust.signing import SignaturePolicy

    settings = _settings(ctx)
    paths = PluginPaths(settings)
    found = discover(paths.search, paths.extracted)
    plan = load_order(found.bundles)
    store, log = _store(settings)
    rows: list[dict[str, Any]] = []
    by_name = {b.name: b for b in found.bundles}
    policy = SignaturePolicy.from_settings(settings)
    for name in [*(b.name for b in plan.order), *sorted(plan.refused)]:
        bundle = by_name[name]
        m = bundle.manifest
        judged, unsigned = policy.judge(bundle.root, bundle.files, name, str(m.version))
        signature = judged or policy.status(bundle.root, bundle.files, name, str(m.version))
        review = store.review(
            name, list(m.permissions), str(m.version), bundle.sha256,
            signer=signature.publisher, trusted=signature.trusted,
        )  # fmt: skip
        refused = str(plan.refused.get(name) or "") or unsigned
        rows.append(
            {
                "name": name,
                "version": str(m.version),
                "runtime": m.runtime,
                "path": str(bundle.path),
                "sha256": bundle.sha256,
                "state": "refused" if refused else "installed",
                "signature": str(signature),
                "reason": refused or "; ".join(plan.notes.get(name, ())),
                "granted": sorted(review.granted),
                "pending": sorted(review.pending),
                "denied": sorted(review.denied),
            }
        )
    log.close()
    errors = {str(path): str(err) for path, err in found.errors.items()}
    if as_json:
        print_json({"plugins": rows, "errors": errors}, out.file)
        return
    if not rows:
        out.print(
            "no valid plugins (those below cannot be opened)"
            if errors
            else "no plugins installed (rwq plugin install PATH)"
        )
    else:
        out.print(
            fitted_table(
                counted(len(rows), "plugin"),
                [
                    TableColumn("name", [r["name"] for r in rows], priority=0),
                    TableColumn("version", [r["version"] for r in rows], priority=3),
                    TableColumn("runtime", [r["runtime"] for r in rows], priority=5),
                    TableColumn("state", [r["state"] for r in rows], priority=1),
                    TableColumn(
                        "signature", [r["signature"] for r in rows], priority=3, shortest=8
                    ),
                    TableColumn(
                        "granted", [", ".join(r["granted"]) for r in rows], priority=2, shortest=12
                    ),
                    TableColumn(
                        "pending", [", ".join(r["pending"]) for r in rows], priority=2, shortest=12
                    ),
                    TableColumn(
                        "denied", [", ".join(r["denied"]) for r in rows], priority=4, shortest=10
                    ),
                ],
                out.width,
            )
        )
        for row in rows:
            if row["state"] == "refused":
                out.print(
                    marked("refused", "yellow", f"{row['name']}: {row['reason']}"),
                    soft_wrap=True,
                )
    _print_invalid(errors)


def _print_invalid(errors: dict[str, str]) -> None:
    """One line per bundle discovery could not open: its path, why (said once)."""
    for path, reason in errors.items():
        out.print(
            marked("invalid", "red", f"{path}: {reason.removeprefix(f'{path}: ')}"),
            soft_wrap=True,
        )


@plugin_app.command("remove")
def remove_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="An installed plugin's name.")],
    purge_data: Annotated[
        bool,
        typer.Option(
            "--purge-data",
            help="Also delete its stored data, grants, denials and configuration (kept by "
            "default, for a later install).",
        ),
    ] = False,
) -> None:
    """Uninstall a plugin from your plugin directory; running hosts unload it."""
    from rwq.plugins.package.install import installed_path, remove_path
    from rwq.plugins.package.user_config import ConfigStore
    from rwq.queue.keys import check_plugin_name

    settings = _settings(ctx)
    check_plugin_name(name)
    paths = PluginPaths(settings)
    installed = installed_path(paths, name)
    if installed is None:
        elsewhere = [d for d in paths.search[:-1] if (d / name).exists()]
        where = f"; it is in {elsewhere[0]} (plugin_dirs or --plugins-dir)" if elsewhere else ""
        raise PluginCliError(f"{name} is not installed in {paths.installed}{where}")
    remove_path(installed)
    out.print(f"removed {name} from {paths.installed}")
    if not purge_data:
        out.print("its data, grants and configuration are kept (--purge-data deletes them)")
        return
    from rwq.connection import connect
    from rwq.plugins.host_api.storage import PluginStorage
    from rwq.queue.keys import Keys

    PluginStorage(connect(settings), Keys(settings.prefix), name, max_keys=0, max_bytes=0).clear()
    store, log = _store(settings)
    try:
        store.forget(name, by="cli")
    finally:
        log.close()
    ConfigStore.from_settings(settings).forget(name)
    out.print(f"deleted {name}'s stored data, grants, denials and configuration")


@plugin_app.command("grant")
def grant_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plugin name.")],
    permissions: Annotated[
        list[str], typer.Argument(help="Permissions its manifest asks for, or levels.")
    ],
    queues: Annotated[
        list[str] | None,
        typer.Option("--queues", help="Narrow the queues it asked for to these globs (repeat)."),
    ] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="e.g. 24h")] = None,
) -> None:
    """Grant the installed version of a plugin what its manifest asks for (a level grants the
    permissions of that level it asks for), on the queues it asked for or fewer."""
    from rwq.plugins.trust.grant_file import show_signer
    from rwq.plugins.trust.signing import SignaturePolicy

    settings = _settings(ctx)
    bundle = _find(settings, name)
    version = str(bundle.version)
    signer = (
        SignaturePolicy.from_settings(settings)
        .status(bundle.root, bundle.files, name, version)
        .publisher
    )
    store, log = _store(settings)
    try:
        grants = store.grant_requested(
            name,
            bundle.manifest.permissions,
            permissions,
            version=str(bundle.version),
            bundle_hash=bundle.sha256,
            queues=tuple(queues) if queues else None,
            expires_in=parse_duration(expires, "--expires") if expires else None,
            granted_by="cli",
            signer=signer,
        )
    finally:
        log.close()
    for grant in grants:
        until = (
            f" until {time.strftime('%Y-%m-%d %H:%M', time.localtime(grant.expires_at))}"
            if grant.expires_at
            else ""
        )
        where = f" on {', '.join(grant.scope.queues)}" if grant.scope.queues != ("*",) else ""
        out.print(
            f"granted {', '.join(sorted(grant.permissions))} to {name} {bundle.version} "
            f"({show_signer(signer)}){where}{until}"
        )


@plugin_app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plugin name.")],
    permissions: Annotated[
        list[str] | None, typer.Argument(help="Permissions to take (default: all).")
    ] = None,
) -> None:
    """Revoke permissions (all by default); running hosts notice within a fraction of a second.
    A removed plugin's grants, kept for a later install, can be revoked too."""
    from rwq.plugins.package.discovery import discover

    settings = _settings(ctx)
    store, log = _store(settings)
    try:
        if name not in store.plugins():
            paths = PluginPaths(settings)
            installed = {b.name for b in discover(paths.search, paths.extracted).bundles}
            if name not in installed:
                known = ", ".join(sorted(installed | set(store.plugins()))) or "none"
                raise PluginCliError(
                    f"no plugin named {name!r} is installed or has grants (known: {known})"
                )
        removed = store.revoke(name, permissions or None, revoked_by="cli")
    finally:
        log.close()
    if removed:
        taken = sorted(removed)
        out.print(
            f"revoked {', '.join(taken)} from {name} (to grant again: rwq plugin grant "
            f"{name} {' '.join(taken)})"
        )
    else:
        out.print(f"{name} had none of those permissions")


@plugin_app.command("audit")
def audit_cmd(
    ctx: typer.Context,
    plugin: Annotated[str | None, typer.Option("--plugin", "-p")] = None,
    denied: Annotated[bool, typer.Option("--denied", help="Only denials.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """The audit log: grants, revokes, denials and capability checks."""
    from rwq.plugins.trust import audit

    records = audit.read(
        audit.audit_path(_settings(ctx)), plugin=plugin, denied_only=denied, limit=limit
    )
    if as_json:
        print_json([r.to_dict() for r in records], out.file)
        return
    for record in records:
        out.print(record.describe(), highlight=False, soft_wrap=True)
    if not records:
        out.print("no audit records match")


@plugin_app.command("run")
def run_cmd(
    ctx: typer.Context,
    policy: PolicyFile = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve per-plugin Prometheus metrics.")
    ] = None,
    duration: Annotated[str | None, typer.Option("--duration", help="Stop after (60s).")] = None,
    watch: WatchPlugins = True,
    plugins_dir: PluginsDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the installed plugins headless (no TUI) until Ctrl-C or --duration."""
    import signal
    import threading

    from prometheus_client import CollectorRegistry, start_http_server

    from rwq.connection import connect
    from rwq.host.build import HostOptions, build_host
    from rwq.valkey.embedded import keeping_embedded

    settings = with_plugin_dirs(_settings(ctx), plugins_dir, "--plugins-dir")
    host = build_host(settings, connect(settings), HostOptions(policy_path=policy, watch=watch))
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
    with keeping_embedded(settings), host:
        if metrics_port:
            registry = CollectorRegistry()
            registry.register(host.manager.collector())
            start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
        if not as_json:
            for name, state in host.states().items():
                reason = host.manager.reason(name)
                out.print(f"{name}: {state}" + (f": {reason}" if reason else ""))
            _print_invalid({str(path): why for path, why in host.manager.invalid.items()})
            if host.control is not None and host.control.listening:
                out.print(f"control: listening as {host.control.identity}")
        done.wait(parse_duration(duration, "--duration") if duration else None)
        snapshots = [asdict(s) for s in host.manager.snapshot()]
    if as_json:
        print_json(snapshots, out.file)
    else:
        for snap in snapshots:
            calls = sum(snap["calls"].values())
            reason = f" ({snap['reason']})" if snap["reason"] else ""
            out.print(
                f"{snap['name']}: {snap['state']}{reason}, {calls} calls, "
                f"{snap['events_delivered']} events"
            )


NO_HOST = "no running plugin host received it: start one with `rwq plugin run` or `rwq tui`"


@plugin_app.command("reload")
def reload_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Plugin name.")],
    timeout: Annotated[
        str, typer.Option("--timeout", help="Longest wait for the hosts' answers, e.g. 10s.")
    ] = "10s",
    wait_probation: Annotated[
        bool,
        typer.Option(
            "--wait-probation", help="Answer once the probation ended (a fault rolls it back)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Reload a plugin from its files in every running plugin host (`rwq plugin run`, the
    TUI), as a save would: validated, loaded beside, swapped in, rolled back if it faults.

    One line per host; exit 1 when no host is running, a host does not know the plugin,
    the reload failed or was rolled back, or a host did not answer in time.
    """
    from rwq.connection import connect
    from rwq.plugins.ops.control import request_reload
    from rwq.queue.keys import Keys

    settings = _settings(ctx)
    wait = parse_duration(timeout, "--timeout")
    client = connect(settings)
    try:
        result = request_reload(
            client, Keys(settings.prefix), name, timeout=wait, settle=wait_probation
        )
    finally:
        client.close()
    if as_json:
        print_json(
            {
                "plugin": name,
                "received": result.received,
                "missing": result.missing,
                "ok": result.ok,
                "replies": [asdict(r) for r in result.replies],
            },
            out.file,
        )
    else:
        _print_reload(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_reload(result: ControlResult) -> None:
    if result.received == 0:
        err.print(marked("error:", "red", NO_HOST), highlight=False, soft_wrap=True)
        return
    for r in result.replies:
        if r.ok:
            probation = f"; on probation for {r.probation_s:g}s" if r.probation_s else ""
            out.print(
                f"{r.host}: {r.plugin} {r.old_version} -> {r.new_version} {r.outcome} "
                f"in {r.elapsed_ms:.0f} ms{probation}",
                highlight=False,
                soft_wrap=True,
            )
        else:
            version = f" {r.new_version}" if r.new_version else ""
            running = f" (running {r.running_version})" if r.running_version else ""
            if r.new_hash and r.running_hash and r.new_version == r.running_version:
                # one version number, two codes: tell them apart by their bundle hashes
                version += f" ({r.new_hash[:12]})"
                running = f" (running {r.running_version} ({r.running_hash[:12]}))"
            out.print(
                f"{r.host}: {r.plugin}{version} {r.outcome}: {r.reason}{running}",
                highlight=False,
                soft_wrap=True,
            )
    if result.missing:
        err.print(
            marked(
                "error:",
                "red",
                f"{result.missing} of {result.received} hosts did not answer "
                f"within {result.timeout:g}s",
            ),
            highlight=False,
            soft_wrap=True,
        )
