"""rwq as a user gets it: the wheel installed into a fresh virtual environment, outside the
repository, runs the demo with the sample plugins it ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, check=False, **kwargs
    )  # type: ignore[call-overload]


def test_the_wheel_runs_the_demo_with_its_sample_plugins(tmp_path: Path) -> None:
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                tmp_path / "dist", REPO, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("rwq-*.whl")
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "--quiet", wheel, timeout=900)
    assert installed.returncode == 0, installed.stderr

    away = tmp_path / "elsewhere"  # no repository files around
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RWQ_", "PYTHON"))}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    where = run(python, "-c", "import rwq.samples as s; print(s.SAMPLES_DIR)", cwd=away, env=env)
    samples = Path(where.stdout.strip())
    assert samples.is_relative_to(tmp_path / "env"), where  # the wheel's copy, not the repo's
    rwq = tmp_path / "env" / "bin" / "rwq"
    try:
        demo = run(rwq, "demo", "--duration", "6s", "--no-tui", "--json", "--policy",
                   samples / "demo-policy.yaml", cwd=away, env=env, timeout=300)  # fmt: skip
        assert demo.returncode == 0, demo.stderr
        summary = json.loads(demo.stdout)
        assert summary["completed"] > 0
        assert summary["plugins"] == {
            "alert-manager": "active", "bulk-operations": "active",
            "custom-metrics": "active", "tenant-sla-monitor": "active",
        }  # fmt: skip
        # rwq plugin new writes from the templates the wheel ships, and the plugin checks clean
        for language in ("c", "assemblyscript", "starlark"):
            made = run(rwq, "plugin", "new", f"new-{language}", "--lang", language, cwd=away,
                       env=env, timeout=60)  # fmt: skip
            assert made.returncode == 0, made.stderr
        assert (away / "new-c" / "rwq.h").is_file() and (away / "new-c" / "build.sh").is_file()
        assert (away / "new-assemblyscript" / "lib" / "rwq.ts").is_file()
        fixtures = away / "new-starlark" / "fixtures"
        checked = run(rwq, "plugin", "check", "new-starlark", "--grant", "observer", "--events",
                      fixtures / "events.jsonl", "--seed", fixtures / "seed.jsonl", "--snapshot",
                      fixtures / "panel.snapshot", cwd=away, env=env, timeout=300)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        run(rwq, "server", "stop", cwd=away, env=env, timeout=60)
