"""Sandbox processes: a zygote the host starts once, and the per-plugin processes it forks
(see ``docs/starlark.md``, "The sandbox")."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rwq.errors import RwqError

__all__ = [
    "ExitStatus",
    "FrameTooLarge",
    "Sandbox",
    "SandboxError",
    "SandboxGone",
    "SandboxTimeout",
    "Zygote",
    "private_bytes",
]

HEADER = struct.Struct(">I")
CONTROL_BYTES = 1 << 20
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class SandboxError(RwqError):
    """The sandbox machinery failed (the zygote could not start or answer)."""


class SandboxGone(SandboxError):
    """The sandbox closed its channel: it died (or broke the protocol)."""


class SandboxTimeout(SandboxError):
    """No frame came from the sandbox before the deadline."""


class FrameTooLarge(SandboxError):
    """The sandbox announced a frame over the cap (the channel cannot be used again)."""

    def __init__(self, pid: int, size: int, cap: int) -> None:
        self.size = size
        self.cap = cap
        super().__init__(f"sandbox {pid} sent a {size}-byte frame (cap {cap})")


@dataclass(frozen=True)
class ExitStatus:
    """How a sandbox ended, as its zygote reaped it."""

    known: bool
    """False if the zygote could not reap it (the zygote was replaced meanwhile)."""
    exit_code: int | None = None
    signal: int | None = None
    max_rss: int = 0
    """Peak resident memory in bytes (``ru_maxrss``)."""

    def describe(self) -> str:
        if not self.known:
            return "ended (status unknown)"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exited with status {self.exit_code}"


def private_bytes(pid: int) -> int:
    """Private (unshared) memory of a process: ``Private_Clean + Private_Dirty`` of
    ``/proc/PID/smaps_rollup``; 0 if it is gone."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return total


CPU_READ_EVERY = 0.05
"""Seconds a sandbox's CPU time read from /proc is reused."""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class Sandbox:
    """One sandbox process and the host's end of its channel. Not thread-safe: one
    conversation at a time.

    The host always kills a sandbox before its zygote reaps it, so its pid cannot be reused
    while the host holds it.
    """

    def __init__(self, zygote: Zygote, pid: int, channel: socket.socket, spawn_rss: int) -> None:
        self.pid = pid
        self.spawn_rss = spawn_rss
        """The zygote's resident memory when it forked this sandbox (shared pages)."""
        self._zygote = zygote
        self._channel = channel
        self._buffer = bytearray()
        self._status: ExitStatus | None = None
        self._cpu = 0.0
        self._cpu_read_at = -CPU_READ_EVERY
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            # signals through a pidfd cannot reach a process that reused the pid
            self._pidfd = os.pidfd_open(pid)

    @property
    def alive(self) -> bool:
        return self._status is None

    def send(self, kind: bytes, body: bytes) -> None:
        """Send one frame: a 4-byte big-endian length, the type byte and the body.

        Raises:
            SandboxGone: the channel is closed.
        """
        try:
            self._channel.sendall(HEADER.pack(len(body) + 1) + kind + body)
        except OSError as exc:
            raise SandboxGone(f"sandbox {self.pid}: {exc}") from None

    def recv(self, deadline: float, max_bytes: int) -> tuple[bytes, bytes]:
        """The next frame ``(type, body)``, waiting until ``deadline`` (monotonic seconds).

        Raises:
            SandboxTimeout: nothing complete by the deadline.
            SandboxGone: the channel closed.
            FrameTooLarge: a frame's body is larger than ``max_bytes``.
        """
        buf = self._buffer
        need = HEADER.size
        size = -1
        while True:
            if size < 0 and len(buf) >= HEADER.size:
                (size,) = HEADER.unpack_from(buf)
                if size < 1 or size > max_bytes + 1:
                    raise FrameTooLarge(self.pid, size - 1, max_bytes)
                need = HEADER.size + size
            if size >= 0 and len(buf) >= need:
                frame = bytes(buf[HEADER.size : need])
                del buf[:need]
                return frame[:1], frame[1:]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimeout(f"sandbox {self.pid} did not answer in time")
            self._channel.settimeout(remaining)
            try:
                chunk = self._channel.recv(max(65536, need - len(buf)))
            except TimeoutError:
                raise SandboxTimeout(f"sandbox {self.pid} did not answer in time") from None
            except OSError as exc:
                raise SandboxGone(f"sandbox {self.pid}: {exc}") from None
            if not chunk:
                raise SandboxGone(f"sandbox {self.pid} closed its channel")
            buf += chunk

    def kill(self) -> None:
        """SIGKILL it; it stays a zombie, its pid reserved, until :meth:`finish`."""
        if self._status is not None:
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except OSError:  # gone already (or its pidfd closed by a concurrent finish)
            pass

    def finish(self) -> ExitStatus:
        """Kill it if it still runs, close the channel and reap it; idempotent."""
        if self._status is None:
            self.cpu_seconds()
            self.kill()
            self._channel.close()
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            self._status = self._zygote.reap(self.pid)
        return self._status

    def private_bytes(self) -> int:
        return private_bytes(self.pid) if self._status is None else 0

    def cpu_seconds(self, *, fresh: bool = False) -> float:
        """CPU time used so far, read from /proc at most every :data:`CPU_READ_EVERY` seconds
        (the host asks around every call; the budget's window is seconds long) unless
        ``fresh``."""
        now = time.monotonic()
        if self._status is None and (fresh or now - self._cpu_read_at >= CPU_READ_EVERY):
            used = cpu_seconds(self.pid)
            if used is not None:
                self._cpu = used
                self._cpu_read_at = now
        return self._cpu


class Zygote:
    """The fork server: one warmed-up interpreter process that forks sandboxes.

    Args:
        script: the child program (``starlark_child.py``).
        init: the JSON sent to it first (what its sandboxes need to know).
        start_timeout: seconds to wait for it to be ready.
    """

    def __init__(self, script: Path, init: dict[str, Any], start_timeout: float = 30.0) -> None:
        self._script = script
        self._init = init
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def private_bytes(self) -> int:
        pid = self.pid
        return private_bytes(pid) if pid is not None else 0

    def _start(self) -> socket.socket:
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", str(self._script), str(child_end.fileno())],
                env={},
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                pass_fds=(child_end.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            host_end.close()
            raise SandboxError(f"cannot start the sandbox zygote: {exc}") from None
        finally:
            child_end.close()
        host_end.settimeout(self._start_timeout)
        try:
            host_end.send(json.dumps(self._init).encode())
            reply = json.loads(host_end.recv(CONTROL_BYTES) or b"{}")
        except (OSError, ValueError) as exc:
            reply = {"error": str(exc) or type(exc).__name__}
        if "pid" not in reply:
            host_end.close()
            self._stop_process()
            reason = reply.get("error", "it exited at start")
            raise SandboxError(f"the sandbox zygote did not start: {reason}")
        host_end.settimeout(None)
        self._control = host_end
        return host_end

    def _request(self, request: dict[str, Any], fds: tuple[int, ...] = ()) -> dict[str, Any]:
        """One request and its reply (lock held); restarts a dead zygote once for a spawn."""
        for attempt in (1, 2):
            control = self._control or self._start()
            try:
                if fds:
                    socket.send_fds(control, [json.dumps(request).encode()], list(fds))
                else:
                    control.send(json.dumps(request).encode())
                data = control.recv(CONTROL_BYTES)
                if data:
                    reply: dict[str, Any] = json.loads(data)
                    return reply
            except OSError:
                pass
            self._drop()  # it died: start another (its sandboxes live on, unreapable)
            if request.get("op") != "spawn" or attempt == 2:
                break
        return {"error": "the sandbox zygote died"}

    def spawn(self, memory_bytes: int) -> Sandbox:
        """Fork a sandbox whose address space may grow by ``memory_bytes``.

        Raises:
            SandboxError: the zygote cannot start or fork.
        """
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                reply = self._request(
                    {"op": "spawn", "memory": int(memory_bytes)}, (child_end.fileno(),)
                )
        finally:
            child_end.close()
        if "pid" not in reply:
            host_end.close()
            raise SandboxError(f"cannot start a sandbox: {reply.get('error', reply)}")
        return Sandbox(self, int(reply["pid"]), host_end, int(reply.get("rss", 0)))

    def reap(self, pid: int) -> ExitStatus:
        """Collect a killed or dead sandbox's status."""
        with self._lock:
            if self._control is None:
                return ExitStatus(known=False)
            reply = self._request({"op": "reap", "pid": pid})
        if not reply.get("known"):
            return ExitStatus(known=False)
        return ExitStatus(
            known=True,
            exit_code=reply.get("exit"),
            signal=reply.get("signal"),
            max_rss=int(reply.get("maxrss", 0)),
        )

    def _drop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        self._stop_process()

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the zygote; it kills and reaps the sandboxes it still has."""
        with self._lock:
            self._drop()
