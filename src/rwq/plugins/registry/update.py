"""``rwq plugin outdated`` and ``update``: installed plugins a registry has newer versions of.

For each, *wanted* is the newest version the other installed plugins' dependency ranges allow
(what ``update`` installs) and *latest* the newest there is; a prerelease counts only for a
plugin running one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rwq.plugins.package.version import Version, parse_range
from rwq.plugins.registry.catalog import Catalog
from rwq.plugins.registry.errors import RegistryError
from rwq.plugins.registry.resolve import Installed, Plan, Request, resolve

__all__ = ["Outdated", "outdated", "update_plan", "update_requests"]

UPDATE = "rwq plugin update"


@dataclass(frozen=True)
class Outdated:
    """An installed plugin with a newer version in a registry."""

    name: str
    current: Version
    wanted: Version | None
    """The newest version the installed plugins allow; None when none is newer."""
    latest: Version
    registry: str


def outdated(
    installed: Mapping[str, Installed], catalog: Catalog, names: list[str] | None = None
) -> list[Outdated]:
    """The plugins of ``installed`` (or of ``names`` among them) with a newer version."""
    found: list[Outdated] = []
    for name in sorted(names if names is not None else installed):
        listing = catalog.get(name)
        if listing is None or name not in installed:
            continue
        current = installed[name].version
        candidates = [
            c for c in listing.candidates() if current.prerelease or not c.version.prerelease
        ]
        if not candidates or candidates[0].version <= current:
            continue
        ranges = [
            p.dependencies[name]
            for other, p in installed.items()
            if other != name and name in p.dependencies
        ]
        wanted = next(
            (
                c.version
                for c in candidates
                if c.version > current and all(r.contains(c.version) for r in ranges)
            ),
            None,
        )
        found.append(
            Outdated(name, current, wanted, candidates[0].version, listing.source.location)
        )
    return found


def update_requests(
    installed: Mapping[str, Installed], catalog: Catalog, name: str | None
) -> list[Request]:
    """What ``rwq plugin update [NAME]`` asks the resolver for: each outdated plugin (or
    ``name``) at a version above the installed one.

    Raises:
        RegistryError: ``name`` is not installed, or no registry lists it.
    """
    if name is not None:
        if name not in installed:
            raise RegistryError("", f"{name} is not installed (rwq plugin install {name})")
        if catalog.get(name) is None:
            raise RegistryError("", f"no registry lists {name} (read {catalog.where()})")
    stale = outdated(installed, catalog, [name] if name is not None else None)
    return [
        Request(item.name, parse_range(f">{item.current}"), UPDATE)
        for item in stale
        if item.wanted is not None
    ]


def update_plan(
    installed: Mapping[str, Installed], catalog: Catalog, requests: list[Request]
) -> Plan:
    """The plan of ``requests`` (from :func:`update_requests`); a prerelease only for a
    plugin running one."""
    pre = any(installed[r.name].version.prerelease for r in requests)
    return resolve(requests, catalog, installed, prerelease=pre)
