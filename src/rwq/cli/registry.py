"""``rwq plugin install|publish|search|outdated|update``: plugins installed from a bundle path or
by name from plugin registries, and published to a directory registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rwq.cli.context import JsonFlag, err, out
from rwq.cli.plugin import PluginCliError, _settings, plugin_app
from rwq.cli.table import TableColumn, fitted_table
from rwq.config import Settings
from rwq.plugins.package.paths import PluginPaths
from rwq.printable import print_json
from rwq.units import counted

if TYPE_CHECKING:
    from rwq.plugins.package.install import StagedBundle
    from rwq.plugins.registry.catalog import Catalog
    from rwq.plugins.registry.resolve import Plan

RegistryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--registry",
        help="Read this registry (an http(s):// URL or a directory) before those of the "
        "setting plugin_registries (repeat).",
    ),
]
PrereleaseFlag = Annotated[
    bool, typer.Option("--pre", help="Consider prereleases (2.0.0-rc.1) even if no range asks.")
]


def _catalog(settings: Settings, given: list[str] | None) -> Catalog:
    from rwq.plugins.registry.catalog import Catalog

    return Catalog.load([*(given or []), *settings.plugin_registries])


def _warn(message: str) -> None:
    err.print(f"warning: {message}")


@plugin_app.command("install")
def install_cmd(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="A .zip bundle or plugin directory (a path that exists), else NAME or "
            "NAME@RANGE from a registry (tenant-sla@^1.2).",
            metavar="BUNDLE|NAME[@RANGE]",
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the installed copy of this plugin.")
    ] = False,
    registry: RegistryOption = None,
    prerelease: PrereleaseFlag = False,
) -> None:
    """Install a plugin into your plugin directory: a bundle (validated, and its signature
    under plugin_signatures: require), or the newest version of NAME within RANGE from a
    registry, with the dependencies it needs (sizes, hashes and signatures checked first)."""
    settings = _settings(ctx)
    path = Path(target)
    if path.exists() or path.is_symlink():
        if registry or prerelease:
            raise PluginCliError(f"{target} is a bundle path: --registry and --pre are for names")
        _install_bundle(settings, path, replace)
        return
    if "/" in target or target.endswith(".zip") or target.startswith("."):
        raise PluginCliError(f"{target}: no such bundle (a file or directory)")
    from rwq.plugins.registry.installer import RegistryInstaller
    from rwq.plugins.registry.resolve import parse_request

    request = parse_request(target)
    with _catalog(settings, registry) as catalog:
        installer = RegistryInstaller(settings, catalog, _warn)
        plan, _found = installer.plan([request], replace=replace, prerelease=prerelease)
        _print_installed(settings, plan, installer.install(plan))


def _install_bundle(settings: Settings, bundle_path: Path, replace: bool) -> None:
    from rwq.plugins.package.bundle import open_bundle
    from rwq.plugins.package.install import Installation
    from rwq.plugins.trust.signing import SignaturePolicy

    paths = PluginPaths(settings)
    bundle = open_bundle(bundle_path, extract_dir=paths.extracted)
    version = str(bundle.version)
    status, refusal = SignaturePolicy.from_settings(settings).judge(
        bundle.root, bundle.files, bundle.name, version
    )
    if refusal:
        raise PluginCliError(f"{bundle_path}: not installed: {refusal}")
    if status is not None and not (status.state == "signed" and status.trusted):
        _warn(f"{bundle.name} {version} is {status}")
    with Installation(paths) as installation:
        staged = installation.stage(bundle_path, bundle, replace=replace)
        installation.commit()
    out.print(f"installed {bundle.name} {bundle.version} to {staged.target}")
    _print_grant_notes(settings, [staged.target])


def _print_installed(settings: Settings, plan: Plan, done: list[StagedBundle]) -> None:
    sources = {c.name: c.source.location for c in plan.install}
    for staged in done:
        out.print(
            f"installed {staged.name} {staged.version} to {staged.target} "
            f"(from {sources[staged.name]})"
        )
    for name, version in sorted(plan.kept.items()):
        out.print(f"kept {name} {version} (installed; satisfies what needs it)")
    _print_grant_notes(settings, [staged.target for staged in done])


WAITS = "it waits for approval (rwq plugin grant, or the TUI's dialog)"


def _print_grant_notes(settings: Settings, installed: list[Path]) -> None:
    """A line for each newly installed plugin that had grants whose grants do not pass to the
    new version: it asks for more, or its signer is not the one the grants were given to.

    The review carries the grants over when they do pass, as a host loading it would.
    """
    import time

    from rwq.plugins.package.bundle import open_bundle
    from rwq.plugins.trust.audit import AuditLog
    from rwq.plugins.trust.grants import GrantStore
    from rwq.plugins.trust.review import rebind_refusal
    from rwq.plugins.trust.signing import SignaturePolicy

    log = AuditLog.from_settings(settings)
    store = GrantStore.from_settings(settings, audit=log)
    policy = SignaturePolicy.from_settings(settings)
    extracted = PluginPaths(settings).extracted
    now = time.time()
    try:
        for path in installed:
            bundle = open_bundle(path, extract_dir=extracted)
            name, version = bundle.name, str(bundle.version)
            live = [g for g in store.grants_for(name) if not g.expired(now)]
            before = frozenset().union(*(g.permissions for g in live))
            if not before:
                continue  # nothing granted: approval was always going to be asked
            signature = policy.status(bundle.root, bundle.files, name, version)
            review = store.review(
                name, list(bundle.manifest.permissions), version, bundle.sha256,
                signer=signature.publisher, trusted=signature.trusted,
            )  # fmt: skip
            if not review.pending:
                continue
            more = ", ".join(sorted(review.pending - before))
            if more:
                out.print(f"{name} {version} asks for {more} besides what was granted: {WAITS}")
            else:
                why = (
                    rebind_refusal(review.previous.signer, signature.publisher, signature.trusted)
                    if review.previous is not None
                    else "they were given to another version"
                )
                out.print(f"{name} {version}: its grants do not carry over ({why}): {WAITS}")
    finally:
        log.close()


@plugin_app.command("publish")
def publish_cmd(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A .zip bundle made by rwq plugin pack.")],
    registry: Annotated[
        str,
        typer.Option(
            "--registry", help="The registry directory to publish to (a path or file:// URL)."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Add a packed bundle to a directory registry (any static file server can serve it):
    copied under bundles/NAME/, its version added to index.json atomically. A version is
    never replaced: publishing it again with other contents is refused."""
    from rwq.plugins.registry.publish import publish
    from rwq.plugins.registry.source import registry_directory

    directory = registry_directory(registry)
    if directory is None:
        raise PluginCliError(
            f"--registry {registry}: publish writes to a directory, not a URL: publish to a "
            "directory, then serve it with any static file server"
        )
    done = publish(bundle, directory, PluginPaths(_settings(ctx)).extracted)
    signer = "unsigned"
    if done.signer is not None:
        signer = f"signed by {done.signer.name} ({done.signer.fingerprint})"
    if as_json:
        print_json(
            {
                "name": done.name,
                "version": done.version,
                "bundle": str(done.bundle),
                "sha256": done.sha256,
                "added": done.added,
                "signer": done.signer.model_dump() if done.signer else None,
            },
            out.file,
        )
    elif done.added:
        out.print(f"published {done.name} {done.version} to {done.bundle} ({signer})")
    else:
        out.print(f"{done.name} {done.version} is published already with the same contents")


@plugin_app.command("search")
def search_cmd(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Words of the name or description.")] = "",
    registry: RegistryOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The registries' plugins whose name or description holds TEXT (all without it): the
    latest version, who published and signed it, and what it does."""
    needle = text.casefold()
    rows: list[dict[str, Any]] = []
    with _catalog(_settings(ctx), registry) as catalog:
        for listing in catalog:
            entry = listing.entry
            if needle not in listing.name.casefold() and needle not in entry.description.casefold():
                continue
            candidates = listing.candidates()
            releases = [c for c in candidates if not c.version.prerelease] or candidates
            latest = releases[0] if releases else None
            signer = latest.release.signer if latest else None
            rows.append(
                {
                    "name": listing.name,
                    "latest": str(latest.version) if latest else None,
                    "versions": [str(c.version) for c in reversed(candidates)],
                    "description": entry.description,
                    "publisher": entry.publisher,
                    "signer": signer.model_dump() if signer else None,
                    "registry": listing.source.location,
                }
            )
    if as_json:
        print_json(rows, out.file)
        return
    if not rows:
        out.print(f"no plugin matches {text!r}" if text else "the registries list no plugins")
        return
    out.print(
        fitted_table(
            counted(len(rows), "plugin"),
            [
                TableColumn("name", [r["name"] for r in rows], priority=0),
                TableColumn("latest", [r["latest"] or "-" for r in rows], priority=1),
                TableColumn("publisher", [r["publisher"] or "-" for r in rows], priority=3),
                TableColumn(
                    "signed by",
                    [r["signer"]["name"] if r["signer"] else "unsigned" for r in rows],
                    priority=2,
                ),
                TableColumn(
                    "description",
                    [r["description"].split("\n", 1)[0] for r in rows],
                    priority=4,
                    shortest=12,
                ),
            ],
            out.width,
        )
    )


@plugin_app.command("outdated")
def outdated_cmd(
    ctx: typer.Context, registry: RegistryOption = None, as_json: JsonFlag = False
) -> None:
    """Installed plugins with a newer version in a registry: the version installed, the
    newest the other installed plugins allow (what update installs) and the newest."""
    from rwq.plugins.registry.installer import installed_plugins
    from rwq.plugins.registry.update import outdated

    settings = _settings(ctx)
    found = installed_plugins(settings)
    with _catalog(settings, registry) as catalog:
        stale = outdated(found.plugins, catalog)
    rows: list[dict[str, Any]] = [
        {
            "name": o.name,
            "current": str(o.current),
            "wanted": str(o.wanted) if o.wanted else None,
            "latest": str(o.latest),
            "registry": o.registry,
        }
        for o in stale
    ]
    if as_json:
        print_json(rows, out.file)
        return
    if not rows:
        out.print("every installed plugin is up to date")
        return
    out.print(
        fitted_table(
            counted(len(rows), "outdated plugin"),
            [
                TableColumn("name", [r["name"] for r in rows], priority=0),
                TableColumn("current", [r["current"] for r in rows], priority=1),
                TableColumn("wanted", [r["wanted"] or "-" for r in rows], priority=1),
                TableColumn("latest", [r["latest"] for r in rows], priority=1),
                TableColumn("registry", [r["registry"] for r in rows], priority=3, shortest=10),
            ],
            out.width,
        )
    )


@plugin_app.command("update")
def update_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One plugin (default: every one).")] = None,
    registry: RegistryOption = None,
) -> None:
    """Install the newest version the installed plugins allow of every outdated plugin (or
    NAME), with the same checks as install; running hosts hot-reload them."""
    from rwq.plugins.registry.installer import RegistryInstaller, installed_plugins
    from rwq.plugins.registry.update import outdated, update_plan, update_requests
    from rwq.queue.keys import check_plugin_name

    settings = _settings(ctx)
    if name is not None:
        check_plugin_name(name)
    found = installed_plugins(settings)
    with _catalog(settings, registry) as catalog:
        # Plugins of plugin_dirs are updated where they live, unless asked for by name.
        mine = {k: v for k, v in found.plugins.items() if name == k or k not in found.outside}
        for item in outdated(mine, catalog, [name] if name else None):
            if item.wanted is None:
                out.print(
                    f"{item.name} {item.current}: {item.latest} is out, but the installed "
                    "plugins that depend on it do not allow a newer version"
                )
        requests = update_requests(mine, catalog, name)
        if not requests:
            out.print(f"{name} is up to date" if name else "every installed plugin is up to date")
            return
        installer = RegistryInstaller(settings, catalog, _warn)
        plan = update_plan(found.plugins, catalog, requests)
        installer.check_outside(plan, found)
        _print_installed(settings, plan, installer.install(plan))
