"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from rwq.queue.events import render_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_events_doc_is_generated_from_the_module() -> None:
    doc = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert doc == render_markdown(), "run: python -m rwq.queue.events > docs/events.md"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_permissions_doc_is_generated_from_the_catalog() -> None:
    from rwq.plugins.contract.permissions import render_markdown as permissions_doc

    doc = (ROOT / "docs" / "permissions.md").read_text(encoding="utf-8")
    assert doc == permissions_doc(), (
        "run: python -m rwq.plugins.contract.permissions > docs/permissions.md"
    )
