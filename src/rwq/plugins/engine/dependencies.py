"""Plugin dependencies as the lifecycle checks them: whether a plugin's required dependencies
let it load now, and whether a new version of a plugin keeps its dependants' ranges."""

from __future__ import annotations

from rwq.plugins.engine.lifecycle import RUNNING, PluginState
from rwq.plugins.engine.records import PluginTable
from rwq.plugins.package.bundle import Bundle
from rwq.plugins.package.manifest import PluginManifest


def dependency_problem(table: PluginTable, manifest: PluginManifest) -> tuple[str, frozenset[str]]:
    """Why the required dependencies stop ``manifest`` from loading now (empty if they
    do not), and the ones it waits for: those not installed, installed in another version,
    or not running yet (it is admitted again when one of them starts)."""
    problems: list[str] = []
    blocked: set[str] = set()
    for dep in manifest.dependencies:
        if dep.optional:
            continue
        other = table.find(dep.name)
        if other is None or other.bundle is None:
            blocked.add(dep.name)
            problems.append(f"requires {dep.name}, which is not installed")
        elif not dep.version.contains(other.bundle.version):
            blocked.add(dep.name)
            problems.append(
                f"requires {dep.name} {dep.version}, but {other.bundle.version} is installed"
            )
        elif other.state is not PluginState.ACTIVE:
            blocked.add(dep.name)
            problems.append(f"requires {dep.name}, which is {other.state.value}")
    return "; ".join(problems), frozenset(blocked)


def dependant_problem(table: PluginTable, name: str, bundle: Bundle) -> str:
    """Why ``bundle`` may not take the place of ``name``: the running plugins whose
    declared range for ``name`` its version is outside (empty if none)."""
    version = bundle.version
    running = [r for r in table.records() if r.state in RUNNING and r.name != name]
    problems = [
        f"{rec.name} {rec.version} requires {name} {dep.version}"
        for rec in running
        if rec.manifest is not None
        for dep in rec.manifest.dependencies
        if dep.name == name and not dep.version.contains(version)
    ]
    if not problems:
        return ""
    return f"version {version} breaks its dependants: {'; '.join(problems)}"
