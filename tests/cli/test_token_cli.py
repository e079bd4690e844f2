"""``rwq token create|list|revoke`` as a user runs them (``redis_client`` empties the
server first)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import redis

Rwq = Callable[..., subprocess.CompletedProcess[str]]


def test_create_list_revoke(rwq: Rwq, redis_client: redis.Redis) -> None:
    created = rwq(
        "token", "create", "ci", "--permission", "admin.queue.requeue",
        "--permission", "observer", "--queues", "tenant.*", "--expires", "30d",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("rwq_ci.") and "\n" not in secret
    assert "shown only now" in created.stderr
    listed = json.loads(rwq("token", "list", "--json").stdout)
    (token,) = listed
    assert token["name"] == "ci"
    assert token["permissions"] == ["admin.queue.requeue", "observer"]
    assert token["queues"] == ["tenant.*"]
    assert token["expires_at"] - token["created_at"] == 30 * 86400
    assert secret.rpartition(".")[2] not in json.dumps(listed)
    table = rwq("token", "list")  # 80 columns: every permission whole, on a line of its own
    assert "ci" in table.stdout and "tenant.*" in table.stdout
    assert "admin.queue.requeue │" in table.stdout and "observer" in table.stdout
    assert rwq("token", "revoke", "ci").returncode == 0
    assert json.loads(rwq("token", "list", "--json").stdout) == []


def test_bad_values_name_the_argument(rwq: Rwq, redis_client: redis.Redis) -> None:
    for args, named in [
        (("bad name", "--permission", "observer"), "NAME"),
        (("ci", "--permission", "admin.nothing"), "--permission"),
        (("ci", "--permission", "observer", "--queues", "a/b"), "--queues"),
        (("ci", "--permission", "observer", "--expires", "soon"), "--expires"),
    ]:
        result = rwq("token", "create", *args)
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("error:") and named in result.stderr
        assert "Traceback" not in result.stderr
    missing = rwq("token", "create", "ci")
    assert missing.returncode == 2 and "--permission" in missing.stderr
    rwq("token", "create", "ci", "--permission", "observer")
    taken = rwq("token", "create", "ci", "--permission", "observer")
    assert (taken.returncode, "exists already" in taken.stderr) == (1, True)
    unknown = rwq("token", "revoke", "ghost")
    assert (unknown.returncode, "no token named 'ghost'" in unknown.stderr) == (1, True)
