"""Which plugins are installed and the order they load in.

:func:`discover` opens every bundle in the plugins directories; a broken bundle is reported
and never hides the others. :func:`load_order` sorts the good ones so each loads after its
dependencies, refusing (with the reason) those whose required dependencies are missing, of
the wrong version, refused themselves, or part of a cycle.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rwq.errors import RwqError
from rwq.plugins.package.bundle import (
    DEFAULT_LIMITS,
    Bundle,
    BundleError,
    BundleLimits,
    open_bundle,
)
from rwq.plugins.package.manifest import MANIFEST_NAMES


class DuplicatePlugin(RwqError):
    """Two bundles carry the same plugin name; neither is loaded until one is removed."""

    def __init__(self, name: str, paths: Sequence[Path]) -> None:
        self.name = name
        self.paths = tuple(paths)
        super().__init__(
            f"plugin {name!r} is installed more than once: {', '.join(map(str, self.paths))}; "
            "remove all but one"
        )


class DependencyError(RwqError):
    """A plugin cannot load because of its dependencies."""

    def __init__(self, plugin: str, reason: str) -> None:
        self.plugin = plugin
        self.reason = reason
        super().__init__(f"plugin {plugin!r}: {reason}")


@dataclass(frozen=True)
class Discovery:
    """The outcome of scanning the plugins directories."""

    bundles: tuple[Bundle, ...]
    """The good bundles, sorted by plugin name."""
    errors: dict[Path, RwqError] = field(default_factory=dict)
    """Per bundle path, why it was refused."""


@dataclass(frozen=True)
class LoadPlan:
    """The order to load plugins in, and the ones that cannot load."""

    order: tuple[Bundle, ...]
    """Every loadable bundle, each after the plugins it depends on."""
    refused: dict[str, DependencyError] = field(default_factory=dict)
    """Per plugin name, why it cannot load."""
    notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per plugin name, things worth telling the user (an optional dependency left out)."""


def discover(
    dirs: Iterable[Path], extract_dir: Path, *, limits: BundleLimits = DEFAULT_LIMITS
) -> Discovery:
    """Open every bundle in ``dirs``: subdirectories holding a manifest, and ``.zip`` files;
    a directory of ``dirs`` that holds a manifest itself is that one plugin.

    Missing directories are skipped, as are hidden entries and ``extract_dir`` itself.
    Two bundles with one plugin name are both refused.
    """
    extract_dir = Path(extract_dir)
    errors: dict[Path, RwqError] = {}
    opened: dict[str, list[Bundle]] = {}
    seen: set[Path] = set()
    for directory in dirs:
        for candidate in _candidates(Path(directory), extract_dir, errors):
            real = candidate.resolve()
            if real in seen:
                continue  # the same directory listed twice, or a link to a bundle seen
            seen.add(real)
            try:
                bundle = open_bundle(candidate, extract_dir=extract_dir, limits=limits)
            except RwqError as exc:
                errors[candidate] = exc
            except Exception as exc:
                # Bundles are hostile input: an error nobody foresaw in one of them must
                # still leave the others discoverable.
                errors[candidate] = BundleError(
                    candidate, f"unexpected {type(exc).__name__}: {exc}"
                )
            else:
                opened.setdefault(bundle.name, []).append(bundle)
    good: list[Bundle] = []
    for name, group in sorted(opened.items()):
        if len(group) == 1:
            good.append(group[0])
            continue
        duplicate = DuplicatePlugin(name, [b.path for b in group])
        for bundle in group:
            errors[bundle.path] = duplicate
    return Discovery(tuple(good), errors)


def _candidates(directory: Path, extract_dir: Path, errors: dict[Path, RwqError]) -> list[Path]:
    if not directory.exists():
        return []
    if any((directory / name).is_file() for name in MANIFEST_NAMES):
        return [directory]  # a plugin given as a directory to search: that plugin alone
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        errors[directory] = BundleError(directory, f"cannot list plugins: {exc.strerror}")
        return []
    skip = extract_dir.resolve()
    found: list[Path] = []
    for entry in entries:
        if entry.name.startswith(".") or entry.resolve() == skip:
            continue
        if entry.is_dir():
            if any((entry / name).is_file() for name in MANIFEST_NAMES):
                found.append(entry)
        elif entry.suffix.lower() == ".zip" and entry.is_file():
            found.append(entry)
    return found


# -- load order ----------------------------------------------------------------------------


def load_order(bundles: Sequence[Bundle]) -> LoadPlan:
    """Sort ``bundles`` so that each loads after its dependencies.

    A required dependency that is missing, out of range, refused or part of a cycle refuses
    the plugin (and so its dependants); an optional one is left out with a note.
    """
    by_name: dict[str, Bundle] = {}
    problems: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    for bundle in bundles:
        if bundle.name in by_name:
            other = by_name[bundle.name]
            problems.setdefault(bundle.name, []).append(
                f"installed twice: {other.path} and {bundle.path}"
            )
        else:
            by_name[bundle.name] = bundle

    required: dict[str, list[str]] = {name: [] for name in by_name}
    optional: dict[str, list[str]] = {name: [] for name in by_name}
    for name, bundle in sorted(by_name.items()):
        for dep in bundle.manifest.dependencies:
            target = by_name.get(dep.name)
            if target is not None and dep.version.contains(target.version):
                (optional if dep.optional else required)[name].append(dep.name)
                continue
            wanted = dep.name if str(dep.version) == "*" else f"{dep.name} {dep.version}"
            if dep.optional:
                why = "is not installed" if target is None else f"does not match {target.version}"
                notes.setdefault(name, []).append(
                    f"optional dependency {wanted} {why}; loading without it"
                )
            elif target is None:
                problems.setdefault(name, []).append(f"requires {wanted}, which is not installed")
            else:
                problems.setdefault(name, []).append(
                    f"requires {wanted}, but {dep.name} {target.version} is installed"
                )

    for cycle in _cycles(required):
        for member in cycle.members:
            problems.setdefault(member, []).append(f"dependency cycle: {cycle.describe(member)}")

    # Refusal spreads to dependants until nothing changes.
    changed = True
    while changed:
        changed = False
        for name in sorted(by_name):
            if name in problems:
                continue
            blocked = [d for d in required[name] if d in problems]
            if blocked:
                problems[name] = [f"requires {b}, which cannot load" for b in blocked]
                changed = True

    loaded = sorted(name for name in by_name if name not in problems)
    edges: dict[str, set[str]] = {name: set(required[name]) for name in loaded}
    for name in loaded:
        for wanted in optional[name]:
            if wanted in problems:
                notes.setdefault(name, []).append(
                    f"optional dependency {wanted} cannot load; loading without it"
                )
            elif _reaches(edges, wanted, name):
                notes.setdefault(name, []).append(
                    f"optional dependency {wanted} depends on {name}, so it loads after {name}"
                )
            else:
                edges[name].add(wanted)

    return LoadPlan(
        order=tuple(by_name[name] for name in _topological(edges)),
        refused={name: DependencyError(name, "; ".join(why)) for name, why in problems.items()},
        notes={name: tuple(lines) for name, lines in notes.items()},
    )


@dataclass(frozen=True)
class _Cycle:
    members: frozenset[str]
    """Every plugin of the strongly connected component."""
    path: tuple[str, ...]
    """One concrete cycle through it, first name repeated at the end."""

    def describe(self, start: str) -> str:
        ring = list(self.path[:-1])
        if start in ring:  # show the cycle from the plugin being refused
            at = ring.index(start)
            ring = ring[at:] + ring[:at]
        return " -> ".join([*ring, ring[0]])


def _cycles(edges: dict[str, list[str]]) -> list[_Cycle]:
    """Every dependency cycle (strongly connected component with a loop), via Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[_Cycle] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] != index[node]:
            return
        component: set[str] = set()
        while True:
            member = stack.pop()
            on_stack.discard(member)
            component.add(member)
            if member == node:
                break
        if len(component) > 1 or node in edges.get(node, ()):
            found.append(_Cycle(frozenset(component), _ring(edges, component)))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _ring(edges: dict[str, list[str]], component: set[str]) -> tuple[str, ...]:
    """The shortest cycle through the alphabetically first member of ``component``."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return (start, *reversed(path[:-1]), start)
                if nxt in component and nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle")


def _reaches(edges: dict[str, set[str]], source: str, target: str) -> bool:
    pending, seen = [source], {source}
    while pending:
        node = pending.pop()
        if node == target:
            return True
        for nxt in edges.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                pending.append(nxt)
    return False


def _topological(edges: dict[str, set[str]]) -> list[str]:
    """Names ordered so every name comes after those in its edge set; ties alphabetical."""
    waiting = {name: len(deps) for name, deps in edges.items()}
    dependants: dict[str, list[str]] = {name: [] for name in edges}
    for name, deps in edges.items():
        for dep in deps:
            dependants[dep].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependant in dependants[name]:
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                heapq.heappush(ready, dependant)
    assert len(order) == len(edges), "cycles were refused before ordering"
    return order
