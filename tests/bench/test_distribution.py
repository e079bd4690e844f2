"""The distribution figures measure what they say: a signed bundle verified, an update's grants
carried over, and an install over HTTP that really lands in the operator's plugin directory."""

from __future__ import annotations

from pathlib import Path

from rwq.bench.distribution import SAMPLE, bench_distribution
from rwq.config import Settings


def test_every_step_runs_and_the_install_lands(tmp_path: Path) -> None:
    figures = bench_distribution(Settings(state_dir=tmp_path / "state"), tmp_path, n=2)
    for step in ("pack", "sign", "open_and_verify", "signature_check", "update_review"):
        assert figures[step]["n"] == 2 and figures[step]["p50_ms"] > 0, step
    assert figures["install_over_http"]["n"] == 1
    installed = tmp_path / "operator" / "plugins" / "installed"
    assert sorted(p.name for p in installed.iterdir()) == [
        "alert-manager.zip",
        f"{SAMPLE}.zip",
    ]
    assert figures["bundle_bytes"] > 0
