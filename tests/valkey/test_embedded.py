"""The embedded server: start once, share, recover from stale state, stop, persist."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from rwq.valkey.embedded import EmbeddedServer, ServerError, ServerKeeper
from rwq.valkey.process import pid_alive, wait_for_exit

MakeEmbedded = Callable[..., EmbeddedServer]


@pytest.fixture
def make_embedded(tmp_path: Path) -> Iterator[MakeEmbedded]:
    """EmbeddedServer factory over tmp state dirs; every server is stopped at teardown."""
    made: list[EmbeddedServer] = []

    def make(
        state_dir: Path | None = None, *, persistence: bool = False, fsync: str = "everysec"
    ) -> EmbeddedServer:
        server = EmbeddedServer(
            state_dir or tmp_path / "state", persistence=persistence, fsync=fsync
        )
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop(timeout=2.0)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def _valkey_pids_on(socket: str) -> list[int]:
    """Pids of valkey-servers whose process title names ``socket`` (Linux only)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_alive(int(entry.name)):
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"unixsocket:{socket}".encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def test_ensure_twice_returns_the_same_server(make_embedded: MakeEmbedded) -> None:
    server = make_embedded()
    url = server.ensure()
    first = server.record()
    assert url.startswith("unix://")
    assert server.ensure() == url
    assert server.record() == first
    with _client(url) as client:
        assert client.ping()
        client.set("k", "v")
    status = server.status()
    assert status is not None and first is not None
    assert (status.pid, status.url, status.persistence, status.keys) == (first.pid, url, False, 1)
    assert status.used_memory > 0
    assert (server.dir / "valkey.conf").read_text().count("port 0") == 1


def test_files_live_under_the_state_dir(make_embedded: MakeEmbedded, tmp_path: Path) -> None:
    server = make_embedded(tmp_path / "s")
    server.ensure()
    names = {p.name for p in (tmp_path / "s" / "server").iterdir()}
    assert {"valkey.conf", "server.json", "valkey.log", "lock", "valkey.sock"} <= names
    record = json.loads((tmp_path / "s" / "server" / "server.json").read_text())
    assert set(record) == {"pid", "socket", "started_at", "persistence", "data_dir", "fsync"}
    conf = (tmp_path / "s" / "server" / "valkey.conf").read_text()
    assert "bind 127.0.0.1\n" in conf and "unixsocketperm 700\n" in conf


RACE = """
import sys, time
from pathlib import Path
from rwq.valkey.embedded import EmbeddedServer
state, me = Path(sys.argv[1]), sys.argv[2]
(state.parent / f"ready-{me}").touch()
while not (state.parent / "go").exists():
    time.sleep(0.001)
print(EmbeddedServer(state, persistence=False).ensure())
"""


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="counts processes via /proc")
def test_racing_processes_get_one_server(make_embedded: MakeEmbedded, tmp_path: Path) -> None:
    server = make_embedded(tmp_path / "race" / "state")
    server.state_dir.parent.mkdir(parents=True)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(server.state_dir), str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 10
    while len(list(server.state_dir.parent.glob("ready-*"))) < len(racers):
        assert time.monotonic() < deadline, "racers did not start"
        time.sleep(0.01)
    (server.state_dir.parent / "go").touch()
    urls = {racer.communicate(timeout=20)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    record = server.record()
    assert record is not None
    assert urls == {record.url}
    assert _valkey_pids_on(record.socket) == [record.pid]


def test_stale_record_is_replaced(make_embedded: MakeEmbedded) -> None:
    server = make_embedded()
    dead = subprocess.Popen(["true"])
    dead.wait()
    server.dir.mkdir(parents=True)
    stale = {
        "pid": dead.pid,
        "socket": str(server.dir / "gone.sock"),
        "started_at": 0.0,
        "persistence": False,
        "data_dir": str(server.dir),
    }
    server.record_path.write_text(json.dumps(stale))
    url = server.ensure()
    record = server.record()
    assert record is not None and record.pid != dead.pid
    with _client(url) as client:
        assert client.ping()


def test_crashed_server_is_restarted(make_embedded: MakeEmbedded) -> None:
    server = make_embedded()
    url = server.ensure()
    before = server.record()
    assert before is not None
    os.kill(before.pid, signal.SIGKILL)
    assert wait_for_exit(before.pid, 5.0)
    assert server.status() is None
    assert server.ensure() == url
    after = server.record()
    assert after is not None and after.pid != before.pid
    with _client(url) as client:
        assert client.ping()


def test_stop(make_embedded: MakeEmbedded) -> None:
    server = make_embedded()
    assert server.stop() is False
    server.ensure()
    record = server.record()
    assert record is not None
    assert server.stop() is True
    assert not pid_alive(record.pid)
    assert not server.record_path.exists()
    assert server.status() is None
    assert server.stop() is False


def test_persistence_survives_restart(make_embedded: MakeEmbedded) -> None:
    server = make_embedded(persistence=True)
    with _client(server.ensure()) as client:
        client.rpush("rwq:jobs", "a", "b")
    assert server.stop()
    assert (server.data_dir / "appendonlydir").is_dir()
    with _client(server.ensure()) as client:
        assert client.lrange("rwq:jobs", 0, -1) == ["a", "b"]


def test_without_persistence_data_is_gone_after_restart(make_embedded: MakeEmbedded) -> None:
    server = make_embedded(persistence=False)
    with _client(server.ensure()) as client:
        client.set("k", "v")
    server.stop()
    with _client(server.ensure()) as client:
        assert client.get("k") is None


def test_long_state_dir_falls_back_to_a_short_socket(
    make_embedded: MakeEmbedded, tmp_path: Path
) -> None:
    server = make_embedded(tmp_path / ("d" * 110))
    assert str(server.socket_path).startswith(f"/tmp/rwq-{os.getuid()}-")
    url = server.ensure()
    record = server.record()
    assert record is not None and url == f"unix://{server.socket_path}" == record.url
    with _client(url) as client:
        assert client.ping()


def test_failed_start_raises_with_the_log(make_embedded: MakeEmbedded) -> None:
    server = make_embedded()
    server.socket_path.mkdir(parents=True)  # a directory where the socket must go
    with pytest.raises(ServerError, match="valkey-server") as caught:
        server.ensure()
    assert caught.value.log_tail
    assert str(server.log_path) in str(caught.value)
    assert server.record() is None


def test_the_keeper_starts_a_dead_server_again_but_not_a_stopped_one(
    make_embedded: MakeEmbedded,
) -> None:
    server = make_embedded()
    server.ensure()
    first = server.record()
    assert first is not None
    keeper = ServerKeeper(server)
    assert keeper.check() is False  # alive: nothing to do
    os.kill(first.pid, signal.SIGKILL)
    wait_for_exit(first.pid, 5.0)
    assert keeper.check() is True
    again = server.record()
    assert again is not None and again.pid != first.pid and pid_alive(again.pid)
    assert keeper.restarts == 1
    server.stop()  # on purpose: the keeper leaves it stopped
    assert keeper.check() is False and server.record() is None


WORKER_APP = """
from pathlib import Path

def handle(job):
    Path(job.payload["done"]).write_text(job.id)
"""


def test_a_worker_restarts_the_embedded_server_it_runs_on(
    make_embedded: MakeEmbedded, tmp_path: Path
) -> None:
    """A long-running process on the embedded Valkey retried a dead server forever (only the
    next CLI command restarted it): the worker starts it again itself and goes on, even when
    the server dies as the worker joins the registry."""
    state = tmp_path / "xdg"
    server = make_embedded(state / "rwq")
    server.ensure()
    before = server.record()
    assert before is not None
    (tmp_path / "keeper_app.py").write_text(WORKER_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env.update(XDG_STATE_HOME=str(state), RWQ_PERSISTENCE="false", PYTHONPATH=str(tmp_path),
               PYTHONUNBUFFERED="1")  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "rwq", "worker", "-q", "q", "--app", "keeper_app:handle"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None
        ready, _, _ = select.select([worker.stderr], [], [], 60)
        assert ready, "the worker never said it was serving"
        assert "serving q" in worker.stderr.readline()  # on this server: now kill it
        os.kill(before.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        after = server.record()
        while after is None or after.pid == before.pid or not pid_alive(after.pid):
            assert time.monotonic() < deadline, "the worker never started the server again"
            assert worker.poll() is None, worker.communicate()
            time.sleep(0.1)
            after = server.record()
        done = tmp_path / "done"
        client = _client(after.url)
        from rwq.config import Settings
        from rwq.queue.broker import Broker
        from rwq.queue.producer import Producer

        settings = Settings(redis_url=after.url, state_dir=state / "rwq", persistence=False)
        Producer(Broker(client, settings)).enqueue("q", {"done": str(done)})
        deadline = time.monotonic() + 20
        while not done.exists():
            assert time.monotonic() < deadline, "the worker never ran a job on the new server"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert "starting it again" in stderr


def test_fsync_always_starts_a_server_that_syncs_every_write(
    make_embedded: MakeEmbedded,
) -> None:
    server = make_embedded(persistence=True, fsync="always")
    url = server.ensure()
    assert _client(url).config_get("appendfsync") == {"appendfsync": "always"}
    status = server.status()
    assert status is not None and status.fsync == "always"


def test_asking_for_always_upgrades_a_running_server_and_nothing_downgrades_it(
    make_embedded: MakeEmbedded, tmp_path: Path
) -> None:
    state = tmp_path / "shared"
    url = make_embedded(state, persistence=True).ensure()
    assert _client(url).config_get("appendfsync") == {"appendfsync": "everysec"}

    assert make_embedded(state, persistence=True, fsync="always").ensure() == url
    assert _client(url).config_get("appendfsync") == {"appendfsync": "always"}
    record = make_embedded(state).record()
    assert record is not None and record.fsync == "always"

    # A process content with everysec must not weaken what another relies on.
    make_embedded(state, persistence=True, fsync="everysec").ensure()
    assert _client(url).config_get("appendfsync") == {"appendfsync": "always"}


def test_a_record_written_before_fsync_existed_reads_as_everysec(
    make_embedded: MakeEmbedded,
) -> None:
    server = make_embedded(persistence=True)
    server.ensure()
    raw = json.loads(server.record_path.read_text())
    del raw["fsync"]
    server.record_path.write_text(json.dumps(raw))
    record = server.record()
    assert record is not None and record.fsync == "everysec"
