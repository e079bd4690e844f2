"""The four sample plugins — tenant SLA monitor (C), alert manager (AssemblyScript), bulk
operations and custom metrics (Starlark) — built and shipped with rwq, so `rwq demo` hosts
them wherever rwq is installed."""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
"""The directory holding one bundle directory per sample plugin."""
DEMO_POLICY = SAMPLES_DIR / "demo-policy.yaml"
"""Grants each sample what its manifest asks for (`make demo` opens without approvals)."""
SAMPLES = ("alert-manager", "bulk-operations", "custom-metrics", "tenant-sla-monitor")
