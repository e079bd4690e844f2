"""YAML written by people (settings, manifests, policies) read strictly: safe types only, no
aliases, no duplicate keys, bounded nesting, and every problem a :class:`YamlInputError`
naming the file, line and column — never an exception of the parser's own."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from rwq.errors import RwqError

MAX_DEPTH = 64
"""Mappings and lists nested deeper than this are refused (the parser would recurse)."""


class YamlInputError(RwqError):
    """A YAML file cannot be read: ``where`` is ``line L, column C`` when known."""

    def __init__(self, source: Path | str, reason: str, where: str = "") -> None:
        self.source = str(source)
        self.reason = reason
        self.where = where
        super().__init__(f"{self.source}: {where + ': ' if where else ''}{reason}")


def load_yaml(text: str | bytes, source: Path | str) -> Any:
    """The document in ``text`` (from ``source``, named in errors).

    Raises:
        YamlInputError: not UTF-8, not YAML, an alias, a duplicate key, a value a tag cannot
            build (``!!int abc``), a lone surrogate, or nesting deeper than :data:`MAX_DEPTH`.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlInputError(
                source, f"not UTF-8 text (byte {exc.start}: {exc.reason})"
            ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        reason = " ".join((reason or str(exc)).split())
        raise YamlInputError(source, f"invalid YAML: {reason}", where) from None
    except yaml.YAMLError as exc:  # a reader error (a control character): one line
        raise YamlInputError(source, "invalid YAML: " + " ".join(str(exc).split())) from None
    except RecursionError:
        raise YamlInputError(source, "invalid YAML: nested too deeply") from None
    except Exception as exc:  # a tag's constructor failed outside construct_object
        raise YamlInputError(source, f"invalid YAML: a value cannot be read ({exc})") from None


def read_yaml(path: Path, max_bytes: int | None = None) -> Any:
    """The document in the file ``path``; a missing or unreadable file is a
    :class:`YamlInputError` too."""
    try:
        with Path(path).open("rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise YamlInputError(path, "file not found") from None
    except OSError as exc:
        raise YamlInputError(path, f"cannot read: {exc.strerror or exc}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise YamlInputError(path, f"larger than {max_bytes // 1024} KiB")
    return load_yaml(data, path)


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases (no billion laughs), duplicate keys (a second
    ``permissions:`` would silently replace the first), deep nesting and lone surrogates, and
    reports a tag that cannot build its value (``!!bool maybe``) at its line."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)  # type: ignore[no-untyped-call]
        except yaml.YAMLError:
            raise
        except Exception:  # any failure of a tag's constructor is bad input
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None, None, f"{tag} cannot read {_short(node)}", node.start_mark
            ) from None
        if isinstance(value, str) and _has_surrogate(value):
            try:  # a JSON-style pair ("\ud83d\ude00") is one character
                value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
            except UnicodeDecodeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a string holds a lone surrogate (not text)", node.start_mark
                ) from None
        return value

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        seen: set[tuple[str, str]] = set()
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def _short(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        text = repr(node.value)
        return text if len(text) <= 40 else f"{text[:37]}..."
    return "a collection"


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and any("\ud800" <= char <= "\udfff" for char in text)
