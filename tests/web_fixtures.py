"""The types of the web tests' fixtures (``tests/web/conftest.py``), importable by name from
any test directory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

MakeToken = Callable[..., str]
"""``make_token("name", "perm", ..., queues=("tenant.*",), expires_in=None)``: a secret."""
Api = Callable[..., httpx.Client]
"""``api(secret)``: a client of the server sending that token (``api()``: none)."""
Kill = Callable[..., None]
"""``kill(queue, jobs, error="boom")``: dead-letter enqueued jobs."""
ErrorOf = Callable[[httpx.Response, int], dict[str, Any]]
"""``error_of(response, status)``: the API's error object, its shape and status checked."""
