"""Installing plugins from registries: each bundle of a plan downloaded to a temporary file, its
size and SHA-256 checked against the index before it is opened, then opened (its file list
checked), matched with its index entry and judged by ``plugin_signatures``; only when every
bundle passed are they installed, together (:class:`rwq.plugins.package.install.Installation`)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rwq.config import Settings
from rwq.errors import RwqError
from rwq.plugins.package.bundle import Bundle, open_bundle
from rwq.plugins.package.discovery import discover
from rwq.plugins.package.install import Installation, StagedBundle
from rwq.plugins.package.paths import PluginPaths
from rwq.plugins.registry.catalog import Candidate, Catalog
from rwq.plugins.registry.errors import RegistryError, ResolutionError
from rwq.plugins.registry.resolve import Installed, Plan, Request, resolve
from rwq.plugins.registry.source import Sink
from rwq.plugins.trust.signing import SignaturePolicy, SignatureStatus

__all__ = ["Fetched", "RegistryInstaller", "installed_plugins"]

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Fetched:
    """A downloaded bundle that passed every check."""

    candidate: Candidate
    bundle: Bundle
    signature: SignatureStatus | None


@dataclass(frozen=True)
class Found:
    """The plugins on this machine: every one discovery finds, and where."""

    plugins: Mapping[str, Installed]
    outside: Mapping[str, Path]
    """Those found in ``plugin_dirs`` rather than the user's plugin directory."""


def installed_plugins(settings: Settings) -> Found:
    """Every plugin discovery finds (the user's plugin directory and ``plugin_dirs``), with
    the ranges of its required dependencies."""
    paths = PluginPaths(settings)
    found = discover(paths.search, paths.extracted)
    plugins: dict[str, Installed] = {}
    outside: dict[str, Path] = {}
    for bundle in found.bundles:
        deps = {d.name: d.version for d in bundle.manifest.dependencies if not d.optional}
        plugins[bundle.name] = Installed(bundle.version, deps)
        if bundle.path.parent.resolve() != paths.installed.resolve():
            outside[bundle.name] = bundle.path
    return Found(plugins, outside)


class RegistryInstaller:
    """Installs plans resolved from a catalog into the user's plugin directory."""

    def __init__(self, settings: Settings, catalog: Catalog, warn: Warn) -> None:
        self.settings = settings
        self.paths = PluginPaths(settings)
        self.catalog = catalog
        self.policy = SignaturePolicy.from_settings(settings)
        self.warn = warn

    def plan(
        self, requests: list[Request], *, replace: bool, prerelease: bool
    ) -> tuple[Plan, Found]:
        """What installing ``requests`` takes.

        Raises:
            RegistryError: a plugin asked for is installed and ``replace`` is false.
            ResolutionError: see :func:`resolve`; or a plugin to install is in ``plugin_dirs``.
        """
        found = installed_plugins(self.settings)
        if not replace:
            for request in requests:
                if request.name in found.plugins:
                    current = found.plugins[request.name].version
                    raise RegistryError(
                        "",
                        f"{request.name} {current} is installed already; `rwq plugin update "
                        f"{request.name}` installs a newer version, --replace reinstalls",
                    )
        plan = resolve(requests, self.catalog, found.plugins, prerelease=prerelease)
        self.check_outside(plan, found)
        return plan, found

    def check_outside(self, plan: Plan, found: Found) -> None:
        """Refuse a plan that would install a plugin found in ``plugin_dirs`` (the copy in
        the plugin directory would make two, and neither would load).

        Raises:
            ResolutionError: naming the plugin and where it is.
        """
        for candidate in plan.install:
            where = found.outside.get(candidate.name)
            if where is not None:
                raise ResolutionError(
                    f"{candidate.name} is in {where} (plugin_dirs), not your plugin directory: "
                    f"installing {candidate.version} beside it would hide both; update it there"
                )

    def install(self, plan: Plan) -> list[StagedBundle]:
        """Download and check every bundle of ``plan``, then install them all.

        Raises:
            RegistryError: a download failed or a bundle was refused (nothing installed).
            InstallError: the plugin directory could not be written (nothing installed).
        """
        if not plan.install:
            return []
        work_root = self.paths.installed.parent
        work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=work_root) as work:
            fetched = [self.fetch(candidate, Path(work)) for candidate in plan.install]
            with Installation(self.paths) as installation:
                for item in fetched:
                    installation.stage(
                        Path(item.candidate.release.bundle), item.bundle, replace=True
                    )
                return installation.commit()

    def fetch(self, candidate: Candidate, work: Path) -> Fetched:
        """Download ``candidate``'s bundle into ``work`` and check it.

        Raises:
            RegistryError: the download failed, or the bundle is refused (named).
        """
        release, source = candidate.release, candidate.source
        where = source.describe(release.bundle)

        def refuse(reason: str) -> RegistryError:
            return RegistryError(source.location, f"{candidate}: {reason}; not installed")

        path = work / f"{candidate.name}-{candidate.version}.zip"
        digest = hashlib.sha256()
        with path.open("xb") as fh:
            size = source.download(release.bundle, release.size, _Hashing(fh, digest))
        if size != release.size:
            raise refuse(f"{where} is {size} bytes, the index says {release.size}")
        if digest.hexdigest() != release.sha256:
            raise refuse(
                f"{where} has sha256 {digest.hexdigest()}, the index says {release.sha256} "
                "(tampered with or corrupt)"
            )
        try:
            bundle = open_bundle(path, extract_dir=self.paths.extracted)
        except RwqError as exc:  # BundleError, ManifestError: say which registry served it
            # Named by where the registry serves it, not the temporary file it was saved to.
            raise refuse(str(exc).replace(str(path), where)) from None
        if bundle.name != candidate.name or bundle.version != candidate.version:
            raise refuse(f"{where} holds {bundle.name} {bundle.version}, not what the index says")
        if bundle.manifest.api_version != release.api_version:
            raise refuse(
                f"its manifest says api_version {bundle.manifest.api_version}, the index "
                f"{release.api_version}"
            )
        version = str(bundle.version)
        status, refusal = self.policy.judge(bundle.root, bundle.files, bundle.name, version)
        if refusal:
            raise refuse(refusal)
        if (
            status is not None
            and release.signer is not None
            and status.fingerprint != release.signer.fingerprint
        ):
            raise refuse(
                f"the index says it is signed by {release.signer.name} "
                f"({release.signer.fingerprint}) but it is {status}"
            )
        if status is not None and not (status.state == "signed" and status.trusted):
            self.warn(f"{bundle.name} {version} is {status}")
        return Fetched(candidate, bundle, status)


class _Hashing:
    """A write target that hashes what passes through it."""

    def __init__(self, target: Sink, digest: hashlib._Hash) -> None:
        self.target = target
        self.digest = digest

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        return self.target.write(data)
