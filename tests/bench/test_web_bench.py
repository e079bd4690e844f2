"""``rwq bench web`` runs against a real ``rwq web`` process and reports its figures (their
values are not asserted: timings belong in the bench)."""

from __future__ import annotations

from rwq.bench.web import run_web_bench
from rwq.config import Settings


def test_the_web_bench_reports_stats_and_lookup_latency(tmp_path) -> None:
    result = run_web_bench(Settings(state_dir=tmp_path / "state"), requests=20)
    assert result["server"] == "throwaway valkey"
    for name in ("stats", "job_lookup"):
        figures = result[name]
        assert figures["requests"] == 20
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert isinstance(result["within_target"], bool)
