"""Every plugin the configured registries serve, read from their indexes: a plugin name belongs
to the first registry that lists it, so a later registry cannot shadow it (the same name
published elsewhere is ignored)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rwq.plugins.package.manifest import SUPPORTED_API_VERSIONS
from rwq.plugins.package.version import Version
from rwq.plugins.registry.errors import RegistryError
from rwq.plugins.registry.index import PluginEntry, Release
from rwq.plugins.registry.source import RegistrySource, open_source

__all__ = ["Candidate", "Catalog", "Listing"]


@dataclass(frozen=True)
class Candidate:
    """One version of a plugin that a registry serves."""

    name: str
    version: Version
    release: Release
    source: RegistrySource

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Listing:
    """A plugin as its registry lists it."""

    name: str
    entry: PluginEntry
    source: RegistrySource

    def candidates(self) -> list[Candidate]:
        """Its versions this rwq can run (a supported API version), newest first."""
        return [
            Candidate(self.name, version, release, self.source)
            for version, release in reversed(self.entry.sorted_versions())
            if release.api_version in SUPPORTED_API_VERSIONS
        ]


class Catalog:
    """The plugins of some registries, by name."""

    def __init__(self, sources: list[RegistrySource], listings: dict[str, Listing]) -> None:
        self.sources = sources
        self.listings = listings

    @classmethod
    def load(cls, locations: Iterable[str]) -> Catalog:
        """Read the index of every registry at ``locations``, in order.

        Raises:
            RegistryError: none given, or one cannot be read or is malformed.
        """
        locations = list(dict.fromkeys(locations))
        if not locations:
            raise RegistryError(
                "", "no plugin registry: set plugin_registries in rwq.yaml or give --registry"
            )
        sources: list[RegistrySource] = []
        listings: dict[str, Listing] = {}
        try:
            for location in locations:
                source = open_source(location)
                sources.append(source)
                for name, entry in source.read_index().plugins.items():
                    listings.setdefault(name, Listing(name, entry, source))
        except BaseException:
            for source in sources:
                source.close()
            raise
        return cls(sources, listings)

    def close(self) -> None:
        for source in self.sources:
            source.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Listing]:
        return iter(sorted(self.listings.values(), key=lambda listing: listing.name))

    def get(self, name: str) -> Listing | None:
        return self.listings.get(name)

    def where(self) -> str:
        """The registries read, for messages."""
        return ", ".join(source.location for source in self.sources)
