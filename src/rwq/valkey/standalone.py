"""Throwaway valkey-servers on 127.0.0.1 for tests, chaos runs and benchmarks.

Unlike the embedded server, a :class:`StandaloneServer` is a child of the process that starts
it, listens on TCP, and keeps its port and data directory across restarts so a chaos test can
"restart Redis" and find its data (when persistence is on) where it left it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis

from rwq.valkey.process import (
    ServerError,
    config_text,
    free_port,
    probe_client,
    valkey_binary,
    wait_until_ready,
)

START_TIMEOUT = 10.0


class StandaloneServer:
    """A valkey-server on ``127.0.0.1:<port>`` with its files in ``data_dir``.

    Args:
        data_dir: config, log and data files; created if missing, kept across restarts.
        port: the TCP port; a free one is picked once and kept for the object's life.
        persistence: AOF plus RDB on shutdown; else nothing on disk.
        fsync: the AOF's ``appendfsync`` policy with persistence (``everysec`` or ``always``).
        extra_config: more ``(name, arg, ...)`` directives, e.g. ``("cluster-enabled", "yes")``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        persistence: bool = False,
        fsync: str = "everysec",
        extra_config: Sequence[Sequence[str]] = (),
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port if port is not None else free_port()
        self.persistence = persistence
        self.fsync = fsync
        self.extra_config = [list(d) for d in extra_config]
        self.config_path = self.data_dir / "valkey.conf"
        self.log_path = self.data_dir / "valkey.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Always the loopback address: test servers are never reachable from outside."""
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``."""
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def client(self, **kwargs: object) -> redis.Redis:
        """A client of this server; ``kwargs`` go to :class:`redis.Redis`."""
        return redis.Redis(host=self.host, port=self.port, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait until it answers PING; a no-op if it runs.

        Raises:
            ServerError: it exited or stayed silent for ``timeout`` seconds.
        """
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text(self._directives()), encoding="utf-8")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(valkey_binary()), str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.data_dir,
                close_fds=True,
            )
        probe = probe_client(host=self.host, port=self.port)
        try:
            wait_until_ready(
                probe,
                timeout=timeout,
                alive=lambda: self.running,
                what=f"valkey-server on port {self.port}",
                log_path=self.log_path,
            )
        except ServerError:
            self.kill()
            raise
        finally:
            probe.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Shut down gracefully (saving data if persistent); kill it after ``timeout``."""
        if self._process is None:
            return
        if self.running:
            probe = probe_client(host=self.host, port=self.port)
            try:
                probe.shutdown(save=self.persistence, nosave=not self.persistence)
            except redis.RedisError:
                self._process.terminate()
            finally:
                probe.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; data not yet fsynced is lost."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process = None

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop gracefully and start again on the same port with the same data directory."""
        self.stop()
        self.start(timeout)

    def remove(self) -> None:
        """Kill the server and delete its data directory."""
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> StandaloneServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def _directives(self) -> list[list[str]]:
        directives = [
            ["daemonize", "no"],
            ["bind", self.host],
            ["port", str(self.port)],
            ["protected-mode", "yes"],
            ["dir", str(self.data_dir)],
            ["logfile", ""],  # stdout, which start() sends to valkey.log
        ]
        if self.persistence:
            directives += [["appendonly", "yes"], ["appendfsync", self.fsync]]
        else:
            directives += [["appendonly", "no"], ["save", ""]]
        return directives + self.extra_config
