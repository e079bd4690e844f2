"""A sandboxed plugin's stdout and stderr: captured into its log, capped per call."""

from __future__ import annotations

import logging


class PluginOutput:
    """A plugin's stdout and stderr: each complete line goes to the ``rwq.plugin.<name>``
    logger (stdout at INFO, stderr at WARNING) and the last ``keep_bytes`` are kept; one call
    may write at most ``per_call_bytes``, the rest is dropped and counted."""

    def __init__(self, plugin: str, keep_bytes: int, per_call_bytes: int) -> None:
        self.logger = logging.getLogger(f"rwq.plugin.{plugin}")
        self.keep_bytes = keep_bytes
        self.per_call_bytes = per_call_bytes
        self.dropped = 0
        """Bytes dropped by the per-call cap."""
        self._kept = bytearray()
        self._call_bytes = 0
        self._call_dropped = 0
        self._partial = {logging.INFO: bytearray(), logging.WARNING: bytearray()}

    def stdout(self, data: bytes) -> None:
        self._write(logging.INFO, data)

    def stderr(self, data: bytes) -> None:
        self._write(logging.WARNING, data)

    def text(self) -> str:
        """What the plugin wrote last (at most ``keep_bytes``)."""
        return self._kept.decode("utf-8", "replace")

    def begin_call(self) -> None:
        self._call_bytes = 0
        self._call_dropped = 0

    def end_call(self) -> None:
        if self._call_dropped:
            self.logger.warning(
                "output over %d bytes in one call: %d bytes dropped",
                self.per_call_bytes,
                self._call_dropped,
            )
            self._call_dropped = 0

    def _write(self, level: int, data: bytes) -> None:
        room = self.per_call_bytes - self._call_bytes
        if len(data) > room:
            dropped = len(data) - max(room, 0)
            self.dropped += dropped
            self._call_dropped += dropped
            data = data[: max(room, 0)]
        if not data:
            return
        self._call_bytes += len(data)
        self._kept += data
        if len(self._kept) > self.keep_bytes:
            del self._kept[: len(self._kept) - self.keep_bytes]
        partial = self._partial[level]
        partial += data
        *lines, rest = partial.split(b"\n")
        for line in lines:
            self.logger.log(level, "%s", line.decode("utf-8", "replace"))
        if len(rest) > self.per_call_bytes:
            self.logger.log(level, "%s", rest.decode("utf-8", "replace"))
            rest = bytearray()
        self._partial[level] = bytearray(rest)
