"""Policy files: grants and denials decided ahead of time, for hosts with no one to ask.

:meth:`Policy.decide` picks from a plugin's pending requests;
:meth:`rwq.plugins.trust.grants.GrantStore.apply_policy` grants and denies that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rwq.errors import ConfigError
from rwq.plugins.contract.permissions import Level, UnknownPermission, expand
from rwq.plugins.trust.review import Wanted
from rwq.plugins.trust.scope import QUEUE_SCOPED, narrow
from rwq.units import UnitError, parse_duration
from rwq.yaml_input import YamlInputError, read_yaml


class PolicyError(ConfigError):
    """A policy file is malformed: names the file and the field at fault."""


@dataclass(frozen=True)
class PolicyRule:
    """What a policy decides for one plugin name (or ``*``, every plugin)."""

    grant: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    queues: tuple[str, ...] = ("*",)
    operations: tuple[str, ...] = ("*",)
    expires_in: float | None = None


@dataclass(frozen=True)
class Policy:
    """Pre-approved grants and denials for headless hosts, from a YAML file."""

    path: Path
    rules: Mapping[str, PolicyRule]

    def rules_for(self, plugin: str) -> list[PolicyRule]:
        """The plugin's own rule and the ``*`` rule; their grants add up."""
        return [self.rules[key] for key in (plugin, "*") if key in self.rules]

    def decide(self, plugin: str, pending: Wanted) -> tuple[list[str], list[PolicyGrant]]:
        """What this policy denies and grants of the ``pending`` requests of ``plugin``.

        Never grants more than was requested: queue and operation globs are cut to the
        policy's. A denial wins over a grant; of two rules, the first to grant decides.
        """
        to_deny = sorted(n for rule in self.rules_for(plugin) for n in rule.deny if n in pending)
        done = set(to_deny)
        to_grant: list[PolicyGrant] = []
        for rule in self.rules_for(plugin):
            groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
            for name in sorted(rule.grant & (pending.keys() - done)):
                asked_queues, asked_operations = pending[name]
                queues = narrow(asked_queues, rule.queues) if name in QUEUE_SCOPED else ("*",)
                operations = narrow(asked_operations, rule.operations)
                if queues and operations:
                    groups.setdefault((queues, operations), []).append(name)
            for (queues, operations), names in groups.items():
                to_grant.append(PolicyGrant(tuple(names), queues, operations, rule.expires_in))
                done.update(names)
        return to_deny, to_grant


@dataclass(frozen=True)
class PolicyGrant:
    """Permissions a policy grants together: one queue and operation scope, one expiry."""

    permissions: tuple[str, ...]
    queues: tuple[str, ...]
    operations: tuple[str, ...]
    expires_in: float | None


MAX_POLICY_BYTES = 1024 * 1024
_RULE_FIELDS = ("grant", "deny", "queues", "operations", "expires")


def load_policy(path: Path) -> Policy:
    """Read a policy file::

        plugins:
          tenant-sla-monitor:
            grant: [events.subscribe, admin.queue.peek]
            deny: [admin.queue.purge]
            queues: ["tenant.*"]
            expires: 24h
          "*":
            grant: [observer]

    Level names grant their non-sensitive permissions. Raises :class:`PolicyError` naming the
    file and the field at fault.
    """
    source = str(path)
    try:
        data = read_yaml(path, MAX_POLICY_BYTES)
    except YamlInputError as exc:
        raise PolicyError(source, exc.where, exc.reason) from None
    if not isinstance(data, dict) or set(data) - {"plugins"}:
        raise PolicyError(source, "", "expected a mapping with one key, 'plugins'")
    plugins = data.get("plugins") or {}
    if not isinstance(plugins, dict):
        raise PolicyError(source, "plugins", "expected a mapping of plugin names to rules")
    rules = {str(name): _rule(source, f"plugins.{name}", raw) for name, raw in plugins.items()}
    return Policy(path, rules)


def _rule(source: str, where: str, raw: Any) -> PolicyRule:
    if not isinstance(raw, dict):
        raise PolicyError(source, where, f"expected a mapping with {', '.join(_RULE_FIELDS)}")
    for key in raw:
        if key not in _RULE_FIELDS:
            raise PolicyError(
                source, f"{where}.{key}", f"unknown field (known: {', '.join(_RULE_FIELDS)})"
            )

    def names(key: str) -> frozenset[str]:
        values = _policy_strs(source, f"{where}.{key}", raw.get(key, []))
        for i, value in enumerate(values):
            try:
                expand([value])
            except UnknownPermission:
                levels = ", ".join(level.label for level in Level)
                raise PolicyError(
                    source,
                    f"{where}.{key}[{i}]",
                    f"unknown permission {value!r} (or level: {levels})",
                ) from None
        return expand(list(values))

    expires_in = None
    if raw.get("expires") is not None:
        try:
            expires_in = parse_duration(raw["expires"], "expires")
        except UnitError as exc:
            raise PolicyError(source, f"{where}.expires", str(exc)) from None
    return PolicyRule(
        grant=names("grant"),
        deny=names("deny"),
        queues=_policy_globs(source, f"{where}.queues", raw.get("queues", ["*"])),
        operations=_policy_globs(source, f"{where}.operations", raw.get("operations", ["*"])),
        expires_in=expires_in,
    )


def _policy_strs(source: str, where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(source, where, "expected a list of strings")
    return tuple(value)


def _policy_globs(source: str, where: str, value: Any) -> tuple[str, ...]:
    globs = _policy_strs(source, where, value)
    if not globs:
        raise PolicyError(source, where, 'expected at least one glob ("*" for all)')
    return globs
