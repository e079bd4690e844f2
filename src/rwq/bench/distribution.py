"""``rwq bench plugins``, distribution: what shipping a plugin costs — packing, signing and
verifying a bundle, the signature check and grant review each load of a plugin pays, and
publishing to and installing from a registry served over HTTP on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rwq.bench.bus import _summary
from rwq.config import Settings
from rwq.plugins.package.bundle import open_bundle
from rwq.plugins.package.pack import pack
from rwq.plugins.package.version import parse_range
from rwq.plugins.registry.catalog import Catalog
from rwq.plugins.registry.installer import RegistryInstaller
from rwq.plugins.registry.publish import publish
from rwq.plugins.registry.resolve import Request
from rwq.plugins.trust.grants import GrantStore
from rwq.plugins.trust.signing import SignaturePolicy, TrustStore, generate_key, sign_bundle
from rwq.samples import SAMPLES_DIR

SAMPLE = "tenant-sla-monitor"
"""A sample plugin with permissions and a dependency (alert-manager), as a third party's
would be: an install resolves and fetches both."""


def _timed(call: Callable[[int], Any], n: int) -> list[float]:
    """Milliseconds of each of ``n`` calls (each given its index)."""
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def _served(directory: Path) -> Iterator[str]:
    """``directory`` served over HTTP on 127.0.0.1 (a free port) until the block ends."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="rwq-bench-registry", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def bench_distribution(settings: Settings, tmp: Path, *, n: int = 20) -> dict[str, Any]:
    """Pack, sign, verify, the load-time signature check and review, publish, and install
    over HTTP; p50/p99 milliseconds of ``n`` runs each (installs: ``n // 2``)."""
    settings = settings.replace(state_dir=tmp / "state", plugin_signatures="require")
    source = tmp / "source"
    shutil.copytree(SAMPLES_DIR / SAMPLE, source)
    result: dict[str, Any] = {"plugin": SAMPLE, "runs": n}
    result["pack"] = _summary(_timed(lambda i: pack(source, tmp / "packed"), n))
    bundle = pack(source, tmp / "dist")
    key = tmp / "acme"
    TrustStore.from_settings(settings).add(generate_key(key, "acme"))

    def sign(i: int) -> None:
        sign_bundle(bundle, key, None, "acme")  # replaces the signature already there

    result["sign"] = _summary(_timed(sign, n))
    result["bundle_bytes"] = bundle.stat().st_size
    extracted = tmp / "extracted"
    result["open_and_verify"] = _summary(
        _timed(lambda i: open_bundle(bundle, extract_dir=extracted), n)
    )
    opened = open_bundle(bundle, extract_dir=extracted)
    policy = SignaturePolicy.from_settings(settings)
    version = str(opened.version)
    status = policy.status(opened.root, opened.files, opened.name, version)
    result["signature_check"] = _summary(
        _timed(lambda i: policy.status(opened.root, opened.files, opened.name, version), n)
    )
    # An update signed by the same trusted key: its grants carried over (read, decide, write).
    grants = GrantStore(tmp / "grants.json")
    requested = list(opened.manifest.permissions)
    names = [p.name for p in requested]
    grants.grant_requested(opened.name, requested, names, version="0.0.0",
                           bundle_hash="0" * 64, signer=status.publisher)  # fmt: skip

    def review(i: int) -> None:
        carried = grants.review(opened.name, requested, f"0.0.{i + 1}", f"{i + 1:064x}",
                                signer=status.publisher, trusted=status.trusted)  # fmt: skip
        assert carried.complete, carried  # a bench that measured a refusal would mislead

    result["update_review"] = _summary(_timed(review, n))
    registry = tmp / "registry"
    result["publish"] = _summary(_timed(lambda i: publish(bundle, registry, extracted), 1))
    for dependency in opened.manifest.dependencies:  # what the install resolves beside it
        packed = pack(SAMPLES_DIR / dependency.name, tmp / "dist")
        sign_bundle(packed, key, None, "acme")
        publish(packed, registry, extracted)
    installer_settings = settings.replace(state_dir=tmp / "operator")
    TrustStore.from_settings(installer_settings).add(TrustStore.from_settings(settings).keys()[0])
    with _served(registry) as url:

        def install(i: int) -> None:
            with Catalog.load([url]) as catalog:
                installer = RegistryInstaller(installer_settings, catalog, lambda _: None)
                request = Request(opened.name, parse_range(f"^{version}"))
                plan, _ = installer.plan([request], replace=True, prerelease=False)
                installer.install(plan)

        result["install_over_http"] = _summary(_timed(install, max(n // 2, 1)))
    return result
