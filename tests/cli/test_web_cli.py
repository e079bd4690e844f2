"""``rwq web`` as a user runs it: it says where it listens, serves the API with a token made by
``rwq token create``, stops on SIGTERM, and warns before listening beyond this machine
without TLS."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

Rwq = Callable[..., subprocess.CompletedProcess[str]]


def test_rwq_web_serves_the_api_until_terminated(
    rwq: Rwq, redis_client: redis.Redis, valkey_url: str, tmp_path: Path
) -> None:
    secret = rwq("token", "create", "ci", "--permission", "observer").stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "state"), "RWQ_REDIS_URL": valkey_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "rwq", "web", "--port", "0", "--no-plugins", "--access-log"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None and process.stdout is not None
        line = process.stderr.readline()
        match = re.match(r"rwq web: (http://127\.0\.0\.1:\d+)/ ", line)
        assert match, line
        url = match.group(1)
        answer = httpx.get(f"{url}/api/v1/queues", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 200 and answer.json()["queues"] == []
        assert httpx.get(f"{url}/api/v1/queues").status_code == 401
        logged = [process.stdout.readline() for _ in range(2)]  # --access-log: a line each
        assert '"GET /api/v1/queues HTTP/1.1" 200' in logged[0], logged
        assert '"GET /api/v1/queues HTTP/1.1" 401' in logged[1], logged
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then ends by the signal it caught
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_rwq_web_warns_before_listening_beyond_this_machine_without_tls(rwq: Rwq) -> None:
    # 192.0.2.1 is a documentation address no interface has: the bind fails, nothing listens.
    result = rwq("web", "--host", "192.0.2.1", "--port", "0", "--no-plugins")
    assert result.returncode != 0
    assert "WARNING:" in result.stderr and "without TLS" in result.stderr
    assert "error: could not listen on 192.0.2.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_rwq_web_names_a_missing_tls_file(rwq: Rwq, tmp_path: Path) -> None:
    result = rwq("web", "--tls-cert", str(tmp_path / "none.pem"), "--tls-key", "k.pem",
                 "--no-plugins")  # fmt: skip
    assert result.returncode == 1
    assert "--tls-cert: no file" in result.stderr
