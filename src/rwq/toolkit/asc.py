"""The AssemblyScript compiler kept warm for ``rwq plugin dev``: one Node process holding
``asc`` loaded (``asc_worker.mjs``), which compiles each save in a fraction of the time a new
``node asc.js`` takes to start and load Binaryen."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from rwq.errors import RwqError

START_TIMEOUT = 60.0
"""Seconds the worker may take to load the compiler."""


class CompilerGone(RwqError):
    """The warm compiler did not answer: it died, hung or could not start."""


class WarmCompiler:
    """A Node process that compiles AssemblyScript on request, started on first use and
    again after a failure (any thread may call :meth:`compile`; calls are serialized)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._key: tuple[str, str] | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    def compile(
        self, node: str, asc_js: Path, cwd: Path, args: list[str], timeout: float
    ) -> tuple[bool, str]:
        """Run ``asc args`` in ``cwd`` with the compiler at ``asc_js``; whether it succeeded
        and what it printed.

        Raises:
            CompilerGone: the worker could not start, died or took longer than ``timeout``
                (it is stopped; the next call starts another).
        """
        with self._lock:
            try:
                self._ensure(node, asc_js)
                request = json.dumps({"cwd": str(cwd), "argv": args}) + "\n"
                assert self._process is not None and self._process.stdin is not None
                self._process.stdin.write(request.encode())
                self._process.stdin.flush()
                answer = self._answer(timeout)
            except (OSError, CompilerGone) as exc:
                self._stop()
                raise CompilerGone(f"the warm AssemblyScript compiler failed: {exc}") from None
        return bool(answer.get("ok")), str(answer.get("output", ""))

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ensure(self, node: str, asc_js: Path) -> None:
        key = (node, str(asc_js))
        if self._process is not None and self._process.poll() is None and self._key == key:
            return
        self._stop()
        script = Path(__file__).with_name("asc_worker.mjs")
        self._process = subprocess.Popen(
            [node, str(script), str(asc_js)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self._key = key
        ready = self._answer(START_TIMEOUT)
        if not ready.get("ready"):
            raise CompilerGone(f"it said {ready!r} instead of being ready")

    def _answer(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the worker writes."""
        process = self._process
        assert process is not None and process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CompilerGone(f"no answer within {timeout:g}s")
                if not selector.select(left):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise CompilerGone(f"it exited ({process.wait()})")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            raise CompilerGone(f"it wrote {line[:200]!r}") from None
        if not isinstance(answer, dict):
            raise CompilerGone(f"it wrote {line[:200]!r}")
        return answer

    def _stop(self) -> None:
        process, self._process, self._buffer = self._process, None, b""
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
