"""``docs/ui-elements.md``, generated from the element catalog
(written by ``make docs``)."""

from __future__ import annotations

from rwq.plugins.contract.ui import (
    ATTRIBUTES,
    COLOURS,
    ID,
    INPUTS,
    LEVELS,
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_RENDER_BYTES,
    MAX_STYLE_WORDS,
    TYPES,
)

__all__ = ["render_markdown"]


def render_markdown() -> str:
    """The text of ``docs/ui-elements.md``, generated from the catalog."""
    lines = [
        "# Plugin UI elements",
        "",
        "<!-- Generated from src/rwq/plugins/contract/ui.py by",
        "`make docs`. -->",
        "",
        'A plugin\'s `render({"width": W, "height": H, "focused": bool})` returns a JSON list',
        "of elements. Each element is an object with a `type` and the fields of its type below.",
        "The host checks every render result: an unknown type, an unknown field, a value of the",
        "wrong type or over its limit is an error that names the element path and field (e.g.",
        "`[1].children[0].rows[3]: has 4 cells, the table has 3 columns`), and the panel shows",
        "the error instead. An optional field set to `null` is the same as leaving it out.",
        "Text is always shown as written: it is never read as markup or emoji codes",
        "(`[bold]`, `[@click=app.quit]`, `:heart:` appear as typed). Characters that would",
        "control the terminal or hide text — C0 and C1 controls (ESC among them), bidi",
        "controls, zero-width characters, line separators, tag characters, lone surrogates —",
        "are shown as visible escapes such as `\\x1b` or `\\u202e`; line feeds and tabs are",
        "kept, carriage returns dropped.",
        "",
        "## Limits",
        "",
        f"- nesting depth ≤ {MAX_DEPTH} (top-level elements are at depth 1);",
        f"- ≤ {MAX_ELEMENTS} elements in the whole result, nested ones included;",
        f"- the result's JSON ≤ {MAX_RENDER_BYTES // 1024} KiB;",
        "- numbers must be finite (no NaN or infinity, no integer beyond a double's range);",
        "  a bool is not a number.",
        "",
        "Every element type accepts an optional `id`: "
        f"{ID.kind.doc}. It is required on `button` and `list`, which produce input events.",
        "",
        "## Types",
        "",
        "| type | what it is | input |",
        "|---|---|---|",
    ]
    lines += [
        f"| [`{t.name}`](#{t.name}) | {t.description} | {t.interactive or ''} |"
        for t in TYPES.values()
    ]
    for t in TYPES.values():
        lines += ["", f"### {t.name}", "", t.description, ""]
        lines += ["| field | required | value | default | meaning |", "|---|---|---|---|---|"]
        for f in t.fields:
            default = "" if f.default is None else f"`{f.default}`"
            required = "yes" if f.required else ""
            lines.append(
                f"| `{f.name}` | {required} | {f.kind.doc} | {default} | {f.description} |"
            )
        if "id" not in {f.name for f in t.fields}:
            lines.append(f"| `id` |  | {ID.kind.doc} |  | {ID.description} |")
        if t.rules:
            lines += [""] + [f"- {rule}" for rule in t.rules]
    lines += [
        "",
        "## Styles",
        "",
        f"A `style` is a space-separated string of at most {MAX_STYLE_WORDS} words, each an",
        "attribute or a colour; `on <colour>` sets the background. At most one foreground and",
        'one background colour. Example: `"bold red on white"`. The empty string is no style.',
        "",
        "- attributes: " + ", ".join(f"`{a}`" for a in ATTRIBUTES),
        "- colours: " + ", ".join(f"`{c}`" for c in COLOURS),
        "",
        "## Levels",
        "",
        "`text` and `badge` take a `level`, a colour by meaning:",
        "",
        "| level | shown as |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in LEVELS.items()]
    lines += [
        "",
        "## Input events",
        "",
        '`on_input(event)` receives one of these and returns `{"changed": bool}`; a changed',
        "panel is rendered again.",
        "",
        "| kind | fields | when | example |",
        "|---|---|---|---|",
    ]
    for i in INPUTS.values():
        fields = "; ".join(f"`{name}`: {meaning}" for name, meaning in i.fields)
        lines.append(f"| `{i.kind}` | {fields} | {i.description} | `{i.example}` |")
    lines.append("")
    return "\n".join(lines)
