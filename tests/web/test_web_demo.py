"""``rwq demo --web``: the workload and its sample plugins behind the web UI, with a token made
for the run that is revoked when it ends."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rwq.samples import SAMPLES_DIR


def test_the_demo_serves_the_web_ui_with_a_token_revoked_at_the_end(
    tmp_path: Path, valkey_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "state"), "RWQ_REDIS_URL": valkey_url}
    demo = subprocess.Popen(
        [sys.executable, "-m", "rwq", "demo", "--web", "--port", "0", "--duration", "12s",
         "--rate", "20", "--workers", "1", "--policy", str(SAMPLES_DIR / "demo-policy.yaml")],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert demo.stderr is not None
        lines = [demo.stderr.readline(), demo.stderr.readline()]
        url = re.search(r"(http://127\.0\.0\.1:\d+)/ ", lines[0])
        token = re.search(r"(rwq_demo-[0-9a-f]+\.\S+)$", lines[1].strip())
        assert url and token, lines
        auth = {"Authorization": f"Bearer {token.group(1)}"}
        with httpx.Client(base_url=url.group(1), headers=auth) as client:
            assert client.get("/login").status_code == 200
            deadline = time.monotonic() + 10
            seen: set[str] = set()
            with client.stream("GET", "/api/v1/stream", timeout=15) as stream:
                for line in stream.iter_lines():
                    if line.startswith('data: {"plugin"'):
                        seen.add(line.split('"plugin":"', 1)[1].split('"', 1)[0])
                    if len(seen) == 4 or time.monotonic() > deadline:
                        break
            samples = {p.name for p in SAMPLES_DIR.iterdir() if (p / "manifest.yaml").is_file()}
            assert seen == samples
            queues = client.get("/api/v1/queues").json()["queues"]
            assert any(q["enqueued_total"] for q in queues)
            out, errors = demo.communicate(timeout=120)
            assert demo.returncode == 0, errors
            assert "demo ran" in out
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    listed = subprocess.run(
        [sys.executable, "-m", "rwq", "token", "list", "--json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "demo-" not in listed.stdout  # the run's token was revoked
