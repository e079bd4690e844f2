"""``docs/host-api.md``, generated from the host-function declarations
(written by ``make docs``)."""

from __future__ import annotations

import json

from rwq.plugins.contract.errors import ERROR_DESCRIPTIONS
from rwq.plugins.contract.host_functions import PLUGIN_QUEUES, SPECS, Param

__all__ = ["render_markdown"]


def _limits(p: Param) -> str:
    parts = []
    if p.choices:
        parts.append("one of " + ", ".join(f"`{c}`" for c in p.choices))
    if p.minimum is not None and p.maximum is not None:
        parts.append(f"{p.minimum:g} to {p.maximum:g}")
    elif p.minimum is not None:
        parts.append(f">= {p.minimum:g}")
    elif p.maximum is not None:
        parts.append(f"<= {p.maximum:g}")
    if p.max_length is not None:
        unit = {"string": "characters", "string[]": "items"}.get(p.type, "bytes of JSON")
        parts.append(f"at most {p.max_length:,} {unit}")
    if p.pattern is not None:
        parts.append(f"`{p.pattern}`".replace("|", "\\|"))
    return "; ".join(parts)


def _default(p: Param) -> str:
    if p.required:
        return "required"
    if p.default is PLUGIN_QUEUES:
        return "the plugin's queue scope"
    value = list(p.default) if isinstance(p.default, tuple) else p.default
    return f"`{json.dumps(value)}`"


def render_markdown() -> str:
    """The text of ``docs/host-api.md``, generated from :data:`HOST_FUNCTIONS`."""
    lines = [
        "# Host API",
        "",
        "<!-- Generated from src/rwq/plugins/contract/host_functions.py by",
        "`make docs`. -->",
        "",
        "The functions a plugin may call. Every call acts as the calling plugin (the runtime",
        "binds it; an argument can never change it), is validated against the table below",
        "(unknown arguments, wrong types and out-of-range values are refused), has its",
        "permission checked on every queue it touches for the loaded version and bundle hash",
        "(see [permissions.md](permissions.md)), and is recorded in the audit log. Results are",
        "JSON. A call that changes a queue is refused while the host runs read-only.",
        "",
        'A call that fails returns `{"error": {"code", "message", "permission"?,',
        '"argument"?}}`:',
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{code.value}` | {text} |" for code, text in ERROR_DESCRIPTIONS.items()]
    lines += [
        "",
        "## Functions",
        "",
        "| function | permission | changes queues | rate limit | description |",
        "|---|---|---|---|---|",
    ]
    for spec in SPECS:
        perm = f"`{spec.permission}`" if spec.permission else "-"
        writes = "destructive" if spec.destructive else "yes" if spec.writes else ""
        rate = f"{spec.rate.count} per {spec.rate.per:g}s" if spec.rate else ""
        lines.append(
            f"| [`{spec.name}`](#{spec.name}) | {perm} | {writes} | {rate} | {spec.description} |"
        )
    lines += [
        "",
        "`job` is the job object (`id`, `queue`, `payload`, `priority`, `tenant`, `attempts`,",
        "`max_retries`, `state`, times in epoch ms, `last_error`, ...); `stats` is one queue's",
        "statistics as in [plugin-events.md](plugin-events.md) (`queue.stats`).",
        "",
    ]
    for spec in SPECS:
        params = ", ".join(p.name if p.required else f"{p.name}?" for p in spec.params)
        lines += [f"### {spec.name}", "", f"`{spec.name}({params})` → `{spec.returns}`", ""]
        lines.append(spec.description)
        lines.append("")
        facts = [f"- permission: `{spec.permission}`" if spec.permission else "- permission: none"]
        if spec.scope:
            facts.append(f"- checked on: {spec.scope}")
        if spec.writes:
            facts.append(
                "- refused in read-only mode" + ("; destructive" if spec.destructive else "")
            )
        if spec.rate:
            facts.append(f"- rate limit: {spec.rate.count} calls per {spec.rate.per:g}s")
        if spec.limits:
            facts.append(f"- limits: {spec.limits}")
        lines += [*facts, ""]
        if spec.params:
            lines += ["| argument | type | default | limits | meaning |", "|---|---|---|---|---|"]
            for p in spec.params:
                kind = p.type + (" or null" if p.nullable else "")
                lines.append(
                    f"| `{p.name}` | {kind} | {_default(p)} | {_limits(p)} | {p.description} |"
                )
            lines.append("")
    return "\n".join(lines)
