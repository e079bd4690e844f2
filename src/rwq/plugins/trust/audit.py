"""The audit log: every grant, revoke, denial and capability check, appended to a JSON-lines file.

:meth:`AuditLog.record` only appends a tuple to an in-memory queue, so the call path never
waits for the disk; a daemon thread writes batches at least every ``flush_interval``. If the
writer falls far behind, records are dropped (never blocking the caller) and a ``dropped``
record says how many. ``rwq plugin audit`` reads the file back with :func:`read`.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Literal

from rwq.config import Settings

Kind = Literal["check", "grant", "revoke", "deny", "forget", "policy", "action", "dropped"]
KINDS: tuple[Kind, ...] = (
    "check", "grant", "revoke", "deny", "forget", "policy", "action", "dropped"
)  # fmt: skip
"""``action``: what an HTTP request did once allowed (``requeued 12 dead letters``)."""

# time, kind, plugin, operation, resource, allowed, reason, chain, dropped
_Entry = tuple[float, str, str, str, str, bool, str, tuple[str, ...], int]

_quote: Callable[[str], str] = encode_basestring_ascii


def audit_path(settings: Settings) -> Path:
    """Where the audit log of ``settings`` lives: ``<state_dir>/plugins/audit.jsonl``."""
    return settings.state_dir / "plugins" / "audit.jsonl"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit log."""

    time: float
    kind: str
    plugin: str
    operation: str
    """For a check the permission (``perm:host-operation`` when one was named); for a grant,
    revoke or denial the comma-joined permissions."""
    resource: str
    """The queue or resource a check was about, or a grant's queue scope."""
    allowed: bool
    reason: str = ""
    chain: tuple[str, ...] = ()
    """Delegation chain, caller first, when a plugin acted through a dependency."""
    dropped: int = 0
    """For ``kind == "dropped"``: how many records were lost."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (empty optional fields left out)."""
        out: dict[str, Any] = {
            "time": self.time,
            "kind": self.kind,
            "plugin": self.plugin,
            "operation": self.operation,
            "resource": self.resource,
            "allowed": self.allowed,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.chain:
            out["chain"] = list(self.chain)
        if self.dropped:
            out["dropped"] = self.dropped
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """A record from its JSON object; raises ``KeyError``/``TypeError``/``ValueError``."""
        return cls(
            time=float(data["time"]),
            kind=str(data["kind"]),
            plugin=str(data["plugin"]),
            operation=str(data["operation"]),
            resource=str(data["resource"]),
            allowed=bool(data["allowed"]),
            reason=str(data.get("reason", "")),
            chain=tuple(str(p) for p in data.get("chain", ())),
            dropped=int(data.get("dropped", 0)),
        )

    def describe(self) -> str:
        """One human line: time, verdict, kind, plugin (or chain), operation, resource."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))
        who = " -> ".join(self.chain) if self.chain else self.plugin
        verdict = "allowed" if self.allowed else "DENIED"
        text = f"{stamp} {verdict:7} {self.kind:7} {who} {self.operation}"
        if self.resource:
            text += f" {self.resource}"
        if self.reason:
            text += f" ({self.reason})"
        return text


class AuditLog:
    """An append-only JSON-lines audit file fed by a background writer.

    Args:
        path: the file; created (with its directory) on the first write, mode 0600.
        flush_interval: the writer writes what is pending at least this often (seconds).
        max_pending: records held in memory before new ones are dropped and counted.
    """

    def __init__(
        self, path: Path, *, flush_interval: float = 0.1, max_pending: int = 100_000
    ) -> None:
        self.path = path
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._pending: deque[_Entry] = deque()
        self._dropped = 0
        self._drop_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._fd: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rwq-audit-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditLog:
        """The audit log in the state dir of ``settings``."""
        return cls(audit_path(settings))

    @property
    def pending(self) -> int:
        """Records recorded but not yet written."""
        return len(self._pending)

    def record(
        self,
        plugin: str,
        operation: str,
        resource: str,
        allowed: bool,
        *,
        reason: str = "",
        chain: tuple[str, ...] = (),
        kind: Kind = "check",
    ) -> None:
        """Queue one record; never blocks on the disk or the writer."""
        if self._closed or len(self._pending) >= self._max_pending:
            with self._drop_lock:
                self._dropped += 1
            return
        self._pending.append(
            (time.time(), kind, plugin, operation, resource, allowed, reason, chain, 0)
        )

    def flush(self) -> None:
        """Write everything recorded before this call (waits for a batch in progress)."""
        self._drain()

    def close(self) -> None:
        """Stop the writer, write what is pending, fsync and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._drain()
        with self._write_lock:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                finally:
                    os.close(self._fd)
                    self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            self._drain()

    def _drain(self) -> None:
        with self._write_lock:
            batch: list[_Entry] = []
            pop = self._pending.popleft
            try:
                while True:
                    batch.append(pop())
            except IndexError:
                pass
            with self._drop_lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                reason = f"{dropped} audit records dropped: the writer fell behind"
                batch.append((time.time(), "dropped", "", "audit", "", False, reason, (), dropped))
            if not batch:
                return
            data = "".join(_line(entry) for entry in batch).encode()
            try:
                self._write(data)
            except OSError:
                # The disk refused (full, gone): never raise into the writer or the call path;
                # count the loss so the next successful batch says so.
                with self._drop_lock:
                    self._dropped += len(batch)

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


def _line(entry: _Entry) -> str:
    # Hand-built (string escaping by the json module's C encoder): a quarter of the cost of
    # json.dumps, and the writer shares the interpreter with the call path.
    when, kind, plugin, operation, resource, allowed, reason, chain, dropped = entry
    line = (
        f'{{"time":{when:.6f},"kind":{_quote(kind)},"plugin":{_quote(plugin)},'
        f'"operation":{_quote(operation)},"resource":{_quote(resource)},'
        f'"allowed":{"true" if allowed else "false"}'
    )
    if reason:
        line += f',"reason":{_quote(reason)}'
    if chain:
        line += ',"chain":[' + ",".join(map(_quote, chain)) + "]"
    if dropped:
        line += f',"dropped":{dropped}'
    return line + "}\n"


def read(
    path: Path,
    *,
    plugin: str | None = None,
    denied_only: bool = False,
    since: float | None = None,
    kinds: Sequence[str] | None = None,
    limit: int | None = None,
    routine: bool = True,
) -> list[AuditRecord]:
    """Records of the audit file at ``path``, oldest first.

    Args:
        plugin: only records of this plugin, including delegation chains it took part in.
        denied_only: only refusals (denied checks and denials).
        since: only records at or after this Unix time.
        kinds: only these kinds (``check``, ``grant``...).
        limit: only the last ``limit`` matching records.
        routine: with False, no allowed capability checks (most of a busy log).

    A missing file reads as empty; lines that are not valid records (a line cut short by a
    crash) are skipped.
    """
    wanted = deque[AuditRecord](maxlen=limit) if limit is not None else deque[AuditRecord]()
    for record in _records(path):
        if plugin is not None and record.plugin != plugin and plugin not in record.chain:
            continue
        if denied_only and (record.allowed or record.kind == "dropped"):
            continue
        if since is not None and record.time < since:
            continue
        if not routine and record.kind == "check" and record.allowed:
            continue
        if kinds is not None and record.kind not in kinds:
            continue
        wanted.append(record)
    return list(wanted)


def _records(path: Path) -> Iterator[AuditRecord]:
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                data = json.loads(line)
                if isinstance(data, dict):
                    yield AuditRecord.from_dict(data)
            except (ValueError, KeyError, TypeError):
                continue
