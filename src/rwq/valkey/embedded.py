"""The embedded Valkey: one server per user, shared by every rwq process, outliving them all.

It lives under ``<state_dir>/server/`` and listens only on a unix socket. Whoever needs it
first starts it (:meth:`EmbeddedServer.ensure`); it runs until :meth:`EmbeddedServer.stop`.
If it dies, the long-running processes' :class:`ServerKeeper` starts it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import redis

from rwq.config import Settings
from rwq.valkey.process import (
    ServerError,
    config_text,
    is_valkey_process,
    pid_alive,
    probe_client,
    terminate,
    valkey_binary,
    wait_for_exit,
    wait_until_ready,
)

__all__ = [
    "EmbeddedServer",
    "ServerError",
    "ServerKeeper",
    "ServerRecord",
    "ServerStatus",
    "keeping_embedded",
]

log = logging.getLogger(__name__)

# sun_path holds 108 bytes on Linux (104 on macOS) including the terminating NUL.
MAX_SOCKET_PATH = 103
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerRecord:
    """What ``server.json`` says about the running server."""

    pid: int
    socket: str
    started_at: float
    persistence: bool
    data_dir: str
    fsync: str = "everysec"
    """The append-only file's ``appendfsync`` policy (with persistence)."""

    @property
    def url(self) -> str:
        """The ``unix://`` URL clients connect to."""
        return f"unix://{self.socket}"


@dataclass(frozen=True)
class ServerStatus:
    """A running server as seen through INFO and DBSIZE."""

    pid: int
    url: str
    socket: str
    persistence: bool
    data_dir: str
    fsync: str
    """``appendfsync`` as the server reports it (with persistence off it does not matter)."""
    uptime_s: float
    used_memory: int
    keys: int


class EmbeddedServer:
    """The shared valkey-server of one state directory.

    Args:
        state_dir: rwq's state directory (``Settings.state_dir``); files go to ``server/``.
        persistence: start the server with an append-only file so data survives restarts.
            Only matters when this call starts the server; a running one is reused as is.
        fsync: the append-only file's ``appendfsync`` policy, ``everysec`` or ``always``. A
            running server that syncs less often is switched to ``always`` when this asks for
            it; it is never switched back, since another process may rely on it (a restart
            with ``rwq server stop`` does that).
    """

    def __init__(self, state_dir: Path, persistence: bool = True, fsync: str = "everysec") -> None:
        self.state_dir = Path(state_dir).expanduser().absolute()
        self.persistence = persistence
        self.fsync = fsync
        self.dir = self.state_dir / "server"
        self.config_path = self.dir / "valkey.conf"
        self.record_path = self.dir / "server.json"
        self.log_path = self.dir / "valkey.log"
        self.lock_path = self.dir / "lock"
        self.pid_path = self.dir / "valkey.pid"
        self.data_dir = self.dir / "data"

    @property
    def socket_path(self) -> Path:
        """Where a newly started server listens: in the server dir, or /tmp if that's too long."""
        preferred = self.dir / "valkey.sock"
        if len(os.fsencode(str(preferred))) <= MAX_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(os.fsencode(str(self.state_dir))).hexdigest()[:16]
        return Path(f"/tmp/rwq-{os.getuid()}-{digest}.sock")

    def ensure(self) -> str:
        """Return the ``unix://`` URL of the running server, starting one if needed.

        Safe to call from many processes at once: an exclusive lock serialises the
        check-and-start, so exactly one server comes up.

        Raises:
            ServerError: the server could not be started within 10 s.
        """
        record = self.record()
        if record is not None and self._answers(record):
            if self._needs_always(record):
                with self._locked():
                    self._sync_always()
            return record.url  # fast path: no lock when the server is up
        with self._locked():
            record = self.record()
            if record is not None:
                if is_valkey_process(record.pid):
                    if self._answers(record, wait=START_TIMEOUT):
                        if self._needs_always(record):
                            self._sync_always()
                        return record.url
                    # Alive but deaf (hung, or a recycled pid): replace it.
                    terminate(record.pid, timeout=2.0)
                self.record_path.unlink(missing_ok=True)
            return self._start().url

    def record(self) -> ServerRecord | None:
        """The contents of ``server.json``, or None if there is none (or it is unreadable)."""
        try:
            raw = json.loads(self.record_path.read_text(encoding="utf-8"))
            return ServerRecord(
                pid=int(raw["pid"]),
                socket=str(raw["socket"]),
                started_at=float(raw["started_at"]),
                persistence=bool(raw["persistence"]),
                data_dir=str(raw["data_dir"]),
                fsync=str(raw.get("fsync", "everysec")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def status(self) -> ServerStatus | None:
        """The running server's vital signs, or None if no server runs.

        Raises:
            ServerError: the server's process is alive but does not answer.
        """
        record = self.record()
        if record is None or not is_valkey_process(record.pid):
            return None
        client = probe_client(unix_socket_path=record.socket, decode_responses=True)
        try:
            info = client.info()
            keys = int(client.dbsize())
            fsync = str(client.config_get("appendfsync").get("appendfsync", ""))
        except redis.RedisError as exc:
            raise ServerError(
                f"valkey-server pid {record.pid} does not answer on {record.socket}: {exc}",
                self.log_path,
            ) from exc
        finally:
            client.close()
        return ServerStatus(
            pid=record.pid,
            url=record.url,
            socket=record.socket,
            persistence=record.persistence,
            data_dir=record.data_dir,
            fsync=fsync,
            uptime_s=float(info.get("uptime_in_seconds", 0)),
            used_memory=int(info.get("used_memory", 0)),
            keys=keys,
        )

    def stop(self, timeout: float = 5.0) -> bool:
        """Shut the server down, saving its data if it runs with persistence.

        Falls back to SIGTERM, then SIGKILL, when SHUTDOWN does not work within ``timeout``.

        Returns:
            Whether a server was running.
        """
        if not self.dir.exists():
            return False
        with self._locked():
            record = self.record()
            if record is None:
                return False
            was_running = is_valkey_process(record.pid)
            if was_running:
                client = probe_client(unix_socket_path=record.socket)
                try:
                    # SAVE also writes an RDB snapshot next to the AOF for a fast reload.
                    client.shutdown(save=record.persistence, nosave=not record.persistence)
                except redis.RedisError:
                    pass  # unreachable or refused: the signals below take over
                finally:
                    client.close()
                if not wait_for_exit(record.pid, timeout):
                    terminate(record.pid, timeout)
            self.record_path.unlink(missing_ok=True)
            return was_running

    def _needs_always(self, record: ServerRecord) -> bool:
        return self.persistence and record.persistence and self.fsync == "always" != record.fsync

    def _sync_always(self) -> None:
        """Switch the running server to ``appendfsync always`` and record it (under the lock)."""
        record = self.record()
        if record is None or record.fsync == "always":
            return
        client = probe_client(unix_socket_path=record.socket)
        try:
            client.config_set("appendfsync", "always")
        except redis.RedisError as exc:
            raise ServerError(
                f"could not switch valkey-server pid {record.pid} to appendfsync always: {exc}",
                self.log_path,
            ) from exc
        finally:
            client.close()
        self._write_record(replace(record, fsync="always"))

    def _answers(self, record: ServerRecord, wait: float = 0.0) -> bool:
        if not pid_alive(record.pid):
            return False
        client = probe_client(unix_socket_path=record.socket)
        try:
            if wait <= 0:
                client.ping()
                return True
            wait_until_ready(
                client, timeout=wait, alive=lambda: pid_alive(record.pid), what="valkey-server"
            )
            return True
        except (redis.RedisError, OSError, ServerError):
            return False
        finally:
            client.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _start(self) -> ServerRecord:
        socket_path = self.socket_path
        data_dir = self.data_dir if self.persistence else self.dir
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pid_path.unlink(missing_ok=True)
        self.config_path.write_text(self._config(socket_path, data_dir), encoding="utf-8")
        # valkey daemonizes itself (fork + setsid), so the server is never our child: it
        # outlives us, and no zombie or "still running" warning is left behind here.
        with self.log_path.open("ab") as log:
            launcher = subprocess.Popen(
                [str(valkey_binary()), str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.dir,
                start_new_session=True,
                close_fds=True,
            )
        try:
            code = launcher.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
            raise ServerError("valkey-server did not daemonize", self.log_path) from None
        if code != 0:
            raise ServerError(f"valkey-server exited with status {code}", self.log_path)
        client = probe_client(unix_socket_path=str(socket_path))
        try:
            wait_until_ready(
                client,
                timeout=START_TIMEOUT,
                alive=self._daemon_alive,
                what="valkey-server",
                log_path=self.log_path,
            )
            pid = int(client.info("server")["process_id"])
        except ServerError:
            pid = self._daemon_pid() or 0
            if pid:
                terminate(pid, timeout=2.0)  # don't leave a half-started server behind
            raise
        finally:
            client.close()
        record = ServerRecord(
            pid=pid,
            socket=str(socket_path),
            started_at=time.time(),
            persistence=self.persistence,
            data_dir=str(data_dir),
            fsync=self.fsync,
        )
        self._write_record(record)
        return record

    def _write_record(self, record: ServerRecord) -> None:
        tmp = self.record_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.record_path)  # readers never see a half-written file

    def _daemon_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _daemon_alive(self) -> bool:
        pid = self._daemon_pid()
        # Until the pidfile appears the daemon is still starting up.
        return pid is None or is_valkey_process(pid)

    def _config(self, socket_path: Path, data_dir: Path) -> str:
        directives: list[list[str]] = [
            ["daemonize", "yes"],
            ["pidfile", str(self.pid_path)],
            ["logfile", str(self.log_path)],
            ["bind", "127.0.0.1"],
            ["port", "0"],
            ["unixsocket", str(socket_path)],
            ["unixsocketperm", "700"],
            ["dir", str(data_dir)],
        ]
        if self.persistence:
            directives += [
                ["appendonly", "yes"],
                ["appendfsync", self.fsync],
                ["save", "60", "1000"],
            ]
        else:
            directives += [["appendonly", "no"], ["save", ""]]
        return config_text(directives)


class ServerKeeper:
    """Starts the embedded server again when it dies under a long-running process (a worker,
    the TUI, ``rwq plugin run``, the demo): every ``interval`` seconds it checks that the
    recorded server's process lives. When several processes notice at once, the start lock
    lets one of them start it and the others find it running; their clients reconnect by
    themselves. A server stopped on purpose (``rwq server stop`` removes its record) is left
    stopped."""

    def __init__(self, server: EmbeddedServer, interval: float = 1.0) -> None:
        self.server = server
        self.interval = interval
        self.restarts = 0
        """Times this keeper started the server again."""
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rwq-server-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> ServerKeeper:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def check(self) -> bool:
        """Start the server if it died; whether it had died."""
        record = self.server.record()
        if record is None or pid_alive(record.pid):
            return False
        log.warning("the embedded Valkey (pid %d) is gone; starting it again", record.pid)
        try:
            url = self.server.ensure()
        except ServerError as exc:
            log.error("the embedded Valkey did not start again: %s", exc)
            return True
        after = self.server.record()
        if after is not None and after.started_at > record.started_at:
            self.restarts += 1
        log.warning("the embedded Valkey runs again at %s (pid %s)", url,
                    after.pid if after else "?")  # fmt: skip
        return True

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.check()
            except Exception:  # the keeper must outlive any surprise; the next look retries
                log.exception("checking the embedded Valkey failed")


@contextlib.contextmanager
def keeping_embedded(settings: Settings) -> Iterator[ServerKeeper | None]:
    """While the block runs, keep the embedded Valkey of ``settings`` running (nothing to do
    when ``settings`` name a server of their own)."""
    if settings.redis_url is not None:
        yield None
        return
    with ServerKeeper(
        EmbeddedServer(settings.state_dir, settings.persistence, settings.fsync)
    ) as keeper:
        yield keeper
