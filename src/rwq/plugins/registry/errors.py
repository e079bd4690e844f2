"""The errors of plugin registries: each names the registry (URL or directory) at fault."""

from __future__ import annotations

from rwq.errors import RwqError

__all__ = ["RegistryError", "ResolutionError"]


class RegistryError(RwqError):
    """A registry cannot be read or written, or what it serves is malformed or refused."""

    def __init__(self, registry: str, reason: str) -> None:
        self.registry = registry
        self.reason = reason
        super().__init__(f"{registry}: {reason}" if registry else reason)


class ResolutionError(RwqError):
    """No set of versions satisfies what was asked for: names the plugins and ranges."""
