"""The types of the web tests' fixtures (``tests/web/conftest.py`` and
``tests/web/browser/conftest.py``), importable by name from any test directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from playwright.sync_api import Page

MakeToken = Callable[..., str]
"""``make_token("name", "perm", ..., queues=("tenant.*",), expires_in=None)``: a secret."""
Api = Callable[..., httpx.Client]
"""``api(secret)``: a client of the server sending that token (``api()``: none)."""
Kill = Callable[..., None]
"""``kill(queue, jobs, error="boom")``: dead-letter enqueued jobs."""
ErrorOf = Callable[[httpx.Response, int], dict[str, Any]]
"""``error_of(response, status)``: the API's error object, its shape and status checked."""
Shot = Callable[["Page", str], Path]
"""``shot(page, "name")``: a screenshot of the page mid-test, ``<test name>.name.png`` in the
screenshots directory; its path."""


@dataclass(frozen=True)
class BrowserError:
    """What a page reported that fails its browser test unless expected: an error on the
    console (``console``), an uncaught exception (``pageerror``) or a Content-Security-Policy
    violation (``csp``: the directive, then what it blocked)."""

    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"
