"""Choosing versions: the newest one of each plugin asked for that its range allows (a
prerelease only when asked for), then the same for its dependencies, transitively. A dependency
already installed that satisfies every range on it is kept; the ranges installed plugins put on
their dependencies hold too. Conflicts and cycles are errors naming the plugins."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from rwq.plugins.package.version import Range, Version, VersionError, parse_range
from rwq.plugins.registry.catalog import Candidate, Catalog
from rwq.plugins.registry.errors import ResolutionError
from rwq.queue.keys import check_plugin_name

__all__ = ["Installed", "Plan", "Request", "parse_request", "resolve"]

MAX_ROUNDS = 100
"""Resolution starts over with what a conflict taught it at most this often."""
COMMAND_LINE = "the command line"


@dataclass(frozen=True)
class Request:
    """A plugin wanted within a range, and who wants it."""

    name: str
    range: Range
    by: str = COMMAND_LINE

    def __str__(self) -> str:
        return f"{self.name}@{self.range}" if self.range.comparators else self.name


def parse_request(text: str) -> Request:
    """``NAME`` or ``NAME@RANGE`` (``tenant-sla@^1.2``, ``alerts@>=1.0.0 <2``).

    Raises:
        InvalidPluginName: the name is not a plugin name.
        VersionError: the range cannot be read.
    """
    name, at, written = text.partition("@")
    check_plugin_name(name)
    if at and not written.strip():
        raise VersionError(text, "nothing after '@': give a range such as ^1.2 or 1.4.0")
    return Request(name, parse_range(written if at else "*"))


@dataclass(frozen=True)
class Installed:
    """A plugin installed now: its version and the ranges of its required dependencies."""

    version: Version
    dependencies: Mapping[str, Range] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What to install, dependencies first, and the installed plugins kept."""

    install: tuple[Candidate, ...]
    kept: Mapping[str, Version]


def resolve(
    requests: list[Request],
    catalog: Catalog,
    installed: Mapping[str, Installed],
    *,
    prerelease: bool = False,
) -> Plan:
    """The versions to install for ``requests`` (each always chosen from the registries),
    and for their dependencies (an installed one kept when it satisfies them).

    Raises:
        ResolutionError: a plugin no registry lists, no version within every range on it
            (naming who asked for each), or a dependency cycle.
    """
    learned: dict[str, list[tuple[Range, str]]] = {}
    for _ in range(MAX_ROUNDS):
        try:
            chosen, kept = _round(requests, catalog, installed, learned, prerelease)
        except _Conflict as conflict:
            known = learned.setdefault(conflict.name, [])
            new = [c for c in conflict.constraints if c not in known]
            if not new:
                raise ResolutionError(_no_version(conflict.name, known, catalog)) from None
            known.extend(new)
            continue
        return Plan(tuple(_ordered(chosen)), kept)
    raise ResolutionError(f"no consistent set of versions found in {MAX_ROUNDS} rounds")


class _Conflict(Exception):
    """The version chosen for ``name`` misses a range found later; start over knowing it."""

    def __init__(self, name: str, constraints: list[tuple[Range, str]]) -> None:
        self.name = name
        self.constraints = constraints


def _round(
    requests: list[Request],
    catalog: Catalog,
    installed: Mapping[str, Installed],
    learned: Mapping[str, list[tuple[Range, str]]],
    prerelease: bool,
) -> tuple[dict[str, Candidate], dict[str, Version]]:
    asked = {r.name for r in requests}
    constraints: dict[str, list[tuple[Range, str]]] = {k: list(v) for k, v in learned.items()}
    for name, plugin in installed.items():
        if name in asked:
            continue  # replaced: its ranges go with it
        for dependency, wanted in plugin.dependencies.items():
            by = f"{name} {plugin.version} (installed)"
            if (wanted, by) not in constraints.setdefault(dependency, []):
                constraints[dependency].append((wanted, by))
    chosen: dict[str, Candidate] = {}
    kept: dict[str, Version] = {}
    pending = deque(requests)
    while pending:
        request = pending.popleft()
        on_it = constraints.setdefault(request.name, [])
        if (request.range, request.by) not in on_it:
            on_it.append((request.range, request.by))
        held = chosen[request.name].version if request.name in chosen else kept.get(request.name)
        if held is not None:
            if not all(r.contains(held) for r, _ in on_it):
                raise _Conflict(request.name, on_it)
            continue
        present = installed.get(request.name)
        if (
            request.name not in asked
            and present is not None
            and all(r.contains(present.version) for r, _ in on_it)
        ):
            kept[request.name] = present.version
            continue
        candidate = _best(request.name, on_it, catalog, prerelease)
        chosen[request.name] = candidate
        for dependency, written in sorted(candidate.release.dependencies.items()):
            pending.append(Request(dependency, parse_range(written), str(candidate)))
    return chosen, kept


def _admits_prerelease(wanted: Range) -> bool:
    # "<2.0.0-0" is how an upper bound keeps 2.0.0's prereleases out, not a request for them.
    return any(
        c.version.prerelease and (c.op != "<" or c.version.prerelease != ("0",))
        for c in wanted.comparators
    )


def _best(
    name: str, on_it: list[tuple[Range, str]], catalog: Catalog, prerelease: bool
) -> Candidate:
    listing = catalog.get(name)
    if listing is None:
        who = ", ".join(sorted({by for _, by in on_it}))
        raise ResolutionError(f"no registry lists {name} (wanted by {who}; read {catalog.where()})")
    pre = prerelease or any(_admits_prerelease(r) for r, _ in on_it)
    for candidate in listing.candidates():
        if candidate.version.prerelease and not pre:
            continue
        if all(r.contains(candidate.version) for r, _ in on_it):
            return candidate
    raise ResolutionError(_no_version(name, on_it, catalog))


def _no_version(name: str, on_it: list[tuple[Range, str]], catalog: Catalog) -> str:
    wants = "; ".join(f"{r} (by {by})" for r, by in on_it)
    listing = catalog.get(name)
    runnable = [str(c.version) for c in listing.candidates()] if listing else []
    known = ", ".join(reversed(runnable)) or "none this rwq can run"
    where = f" in {listing.source.location}" if listing else ""
    return f"no version of {name}{where} satisfies {wants} (available: {known})"


def _ordered(chosen: dict[str, Candidate]) -> list[Candidate]:
    """``chosen`` with each plugin after the chosen plugins it depends on."""
    done: list[Candidate] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name) :], name]
            raise ResolutionError(f"dependency cycle: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for dependency in sorted(chosen[name].release.dependencies):
            if dependency in chosen:
                visit(dependency, [*path, name])
        state[name] = "done"
        done.append(chosen[name])

    for name in sorted(chosen):
        visit(name, [])
    return done
