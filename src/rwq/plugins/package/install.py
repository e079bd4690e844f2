"""Installing bundles into the user's plugin directory: each copied to a hidden staging name and
checked again, then all swapped into place together, or none of them.

``rwq plugin install PATH`` installs one bundle this way, a registry install a plugin with its
dependencies; running hosts pick the new files up through hot reload.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rwq.errors import RwqError
from rwq.plugins.package.bundle import Bundle, open_bundle
from rwq.plugins.package.paths import PluginPaths

__all__ = ["InstallError", "Installation", "StagedBundle", "installed_path", "remove_path"]


class InstallError(RwqError):
    """A bundle could not be installed; nothing of it was left in the plugin directory."""


def installed_path(paths: PluginPaths, name: str) -> Path | None:
    """Where ``name`` is installed in the user's plugin directory (a directory or a zip), if
    it is."""
    for candidate in (paths.installed / name, paths.installed / f"{name}.zip"):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None


def remove_path(path: Path) -> None:
    """Delete a file or directory tree, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _copy_files(root: Path, files: tuple[str, ...], target: Path) -> None:
    """Copy exactly the checked ``files`` of a bundle directory (never what it ignores, such
    as ``.git``, nor a link swapped in since it was checked)."""
    for rel in files:
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as source, destination.open("wb") as out_file:
            shutil.copyfileobj(source, out_file)


@dataclass(frozen=True)
class StagedBundle:
    """A bundle copied beside the plugin directory's entries under a hidden name, checked."""

    name: str
    version: str
    source: Path
    """Where it was installed from (a bundle path, or a downloaded file)."""
    staging: Path
    target: Path
    replaces: Path | None
    """The installed copy it replaces, if any."""


class Installation:
    """Bundles installed together: :meth:`stage` copies and checks each, :meth:`commit` moves
    them all into place (undoing the moves made so far when one fails), :meth:`abort` (or
    leaving the ``with`` block early) removes what was staged."""

    def __init__(self, paths: PluginPaths) -> None:
        self.paths = paths
        self.staged: list[StagedBundle] = []

    def __enter__(self) -> Installation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def stage(self, source: Path, bundle: Bundle, *, replace: bool) -> StagedBundle:
        """Copy ``bundle`` (opened from ``source``) to a hidden name in the plugin directory
        and open the copy again: it must be the very bundle that was checked.

        Raises:
            InstallError: it is installed and ``replace`` is false, or it cannot be copied.
        """
        installed = self.paths.installed
        installed.mkdir(parents=True, exist_ok=True)
        existing = installed_path(self.paths, bundle.name)
        if existing is not None and not replace:
            raise InstallError(
                f"{bundle.name} is already installed at {existing}; use --replace to replace "
                f"it with {bundle.version} from {source}"
            )
        if any(s.name == bundle.name for s in self.staged):
            raise InstallError(f"{bundle.name} is staged twice in one installation")
        target = installed / (f"{bundle.name}.zip" if bundle.kind == "zip" else bundle.name)
        # Hidden (discovery skips it) and, for a zip, still a .zip (it is opened to be checked).
        staging = target.with_name(f".{target.stem}.installing{target.suffix}")
        remove_path(staging)
        try:
            if bundle.kind == "zip":
                shutil.copyfile(bundle.path, staging)
            else:
                _copy_files(bundle.root, bundle.files, staging)
            copied = open_bundle(staging, extract_dir=self.paths.extracted)
        except (OSError, RwqError) as exc:
            remove_path(staging)
            raise InstallError(f"{source}: cannot install: {exc}") from None
        if copied.sha256 != bundle.sha256:
            remove_path(staging)
            raise InstallError(f"{source} changed while it was being installed; try again")
        staged = StagedBundle(bundle.name, str(bundle.version), source, staging, target, existing)
        self.staged.append(staged)
        return staged

    def commit(self) -> list[StagedBundle]:
        """Move every staged bundle into place, the copies they replace out of it.

        Raises:
            InstallError: a move failed; the plugin directory is as it was before.
        """
        moved: list[tuple[StagedBundle, Path | None]] = []
        try:
            for staged in self.staged:
                backup = None
                if staged.replaces is not None:
                    backup = staged.target.with_name(f".{staged.replaces.name}.replaced")
                    remove_path(backup)
                    staged.replaces.rename(backup)
                moved.append((staged, backup))
                staged.staging.rename(staged.target)
        except OSError as exc:
            for staged, backup in reversed(moved):
                if staged.target.exists() and not staged.staging.exists():
                    staged.target.rename(staged.staging)
                if backup is not None and staged.replaces is not None and backup.exists():
                    backup.rename(staged.replaces)
            self.abort()
            raise InstallError(f"cannot install into {self.paths.installed}: {exc}") from None
        for _staged, backup in moved:
            if backup is not None:
                remove_path(backup)
        done, self.staged = self.staged, []
        return done

    def abort(self) -> None:
        """Remove whatever is staged and not committed."""
        for staged in self.staged:
            remove_path(staged.staging)
        self.staged = []
