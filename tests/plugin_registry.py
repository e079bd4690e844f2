"""Helpers of the plugin registry tests: real bundles made with the real pack code, and a
registry directory served over HTTP on 127.0.0.1 by a server the test starts and stops."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rwq.plugins.package.pack import pack

MAIN_STAR = "def render(size):\n    return []\n"


def make_bundle(
    work: Path,
    name: str,
    version: str,
    dependencies: dict[str, str] | None = None,
    *,
    description: str = "",
    extra: bytes = b"",
    permissions: tuple[str, ...] = (),
) -> Path:
    """A Starlark plugin packed into ``work/dist/NAME-VERSION.zip`` by ``rwq plugin pack``'s
    code; ``extra`` adds a file of those bytes (to make a bundle larger or different),
    ``permissions`` are what its manifest asks for."""
    source = work / "src" / f"{name}-{version}"
    source.mkdir(parents=True)
    lines = [
        f"name: {name}",
        f'version: "{version}"',
        "api_version: v1",
        "runtime: starlark",
        "entry_point: main.star",
        f"description: {description or name + ' for the registry tests'}",
        "author: registry tests",
    ]
    if permissions:
        lines.append(f"permissions: [{', '.join(permissions)}]")
    if dependencies:
        lines.append("dependencies:")
        lines += [
            f'  - {{name: {dep}, version: "{wanted}"}}' for dep, wanted in dependencies.items()
        ]
    (source / "manifest.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (source / "main.star").write_text(MAIN_STAR, encoding="utf-8")
    if extra:
        (source / "extra.bin").write_bytes(extra)
    return pack(source, work / "dist")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(
    directory: Path, handler: type[http.server.BaseHTTPRequestHandler] | None = None
) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) while the block runs; its URL."""
    made = handler or functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), made)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
