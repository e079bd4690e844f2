"""``rwq plugin publish|search|install NAME|outdated|update`` against a registry served over
HTTP by a real server on 127.0.0.1, in an isolated state dir."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin_registry import make_bundle, serve
from rwq.plugins.registry.publish import publish


def rwq(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    done = subprocess.run(
        [sys.executable, "-m", "rwq", *args],
        capture_output=True, text=True, env={**base, **env}, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A directory registry: alerts 1.0.0, 1.1.0, 2.0.0-rc.1 and sla 1.0.0, 1.2.0 (^1.1)."""
    root = tmp_path / "registry"
    root.mkdir()
    for name, version, deps in [
        ("alerts", "1.0.0", {}),
        ("alerts", "1.1.0", {}),
        ("alerts", "2.0.0-rc.1", {}),
        ("sla", "1.0.0", {"alerts": "^1"}),
        ("sla", "1.2.0", {"alerts": "^1.1"}),
    ]:
        bundle = make_bundle(tmp_path / "work" / f"{name}-{version}", name, version, deps)
        assert publish(bundle, root, tmp_path / "publish-extracted").added
    return root


@pytest.fixture
def url(registry: Path) -> Iterator[str]:
    with serve(registry) as served:
        yield served


def _installed() -> dict[str, str]:
    listed = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    return {p["name"]: p["version"] for p in listed}


def test_search_install_outdated_and_update_over_http(url: str, registry: Path) -> None:
    found = rwq("plugin", "search", "sla", "--registry", url, "--json")
    assert found.returncode == 0, found.stderr
    [sla] = json.loads(found.stdout)
    assert sla["latest"] == "1.2.0" and sla["versions"] == ["1.0.0", "1.2.0"]
    assert sla["signer"] is None and sla["publisher"] == "registry tests"
    table = rwq("plugin", "search", "--registry", url)
    assert "alerts" in table.stdout and "1.1.0" in table.stdout and "unsigned" in table.stdout

    installed = rwq("plugin", "install", "sla@~1.0", "--registry", url)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.splitlines()[0].startswith("installed alerts 1.1.0 to ")
    assert "installed sla 1.0.0 to" in installed.stdout and f"(from {url})" in installed.stdout
    assert "warning: alerts 1.1.0 is unsigned" in installed.stderr
    assert _installed() == {"alerts": "1.1.0", "sla": "1.0.0"}

    # The registry from the setting this time.
    settings = {"RWQ_PLUGIN_REGISTRIES": url}
    outdated = rwq("plugin", "outdated", "--json", **settings)
    assert json.loads(outdated.stdout) == [
        {"name": "sla", "current": "1.0.0", "wanted": "1.2.0", "latest": "1.2.0", "registry": url}
    ]  # alerts 2.0.0-rc.1 is a prerelease: not offered for a release
    updated = rwq("plugin", "update", **settings)
    assert updated.returncode == 0, updated.stderr
    assert "installed sla 1.2.0" in updated.stdout and "kept alerts 1.1.0" in updated.stdout
    assert _installed() == {"alerts": "1.1.0", "sla": "1.2.0"}
    assert "every installed plugin is up to date" in rwq("plugin", "outdated", **settings).stdout
    assert "sla is up to date" in rwq("plugin", "update", "sla", **settings).stdout

    again = rwq("plugin", "install", "sla", **settings)
    assert again.returncode == 1 and "sla 1.2.0 is installed already" in again.stderr


def test_an_installed_dependency_pins_what_update_installs(url: str, tmp_path: Path) -> None:
    assert rwq("plugin", "install", "alerts@1.0.0", "--registry", url).returncode == 0
    pinned = make_bundle(tmp_path / "pin", "pinned", "1.0.0", {"alerts": "<1.1"})
    assert rwq("plugin", "install", str(pinned)).returncode == 0
    [row] = json.loads(rwq("plugin", "outdated", "--json", "--registry", url).stdout)
    assert (row["current"], row["wanted"], row["latest"]) == ("1.0.0", None, "1.1.0")
    update = rwq("plugin", "update", "--registry", url)
    assert "do not allow a newer version" in update.stdout
    assert _installed()["alerts"] == "1.0.0"


def test_a_tampered_bundle_is_refused_before_it_is_opened(
    url: str, registry: Path, tmp_path: Path
) -> None:
    bundle = registry / "bundles" / "alerts" / "alerts-1.1.0.zip"
    data = bytearray(bundle.read_bytes())
    data[40] ^= 0xFF  # same size, other bytes
    bundle.write_bytes(bytes(data))
    refused = rwq("plugin", "install", "sla@1.2.0", "--registry", url)
    assert refused.returncode == 1
    assert "alerts 1.1.0: " in refused.stderr and "tampered with or corrupt" in refused.stderr
    assert _installed() == {}  # not sla either: nothing half-installed
    extracted = Path(os.environ["XDG_STATE_HOME"]) / "rwq" / "plugins" / "extracted"
    assert not list(extracted.glob("alerts-*"))  # never unpacked


def test_a_bundle_larger_than_the_index_says_is_refused(url: str, registry: Path) -> None:
    bundle = registry / "bundles" / "alerts" / "alerts-1.0.0.zip"
    bundle.write_bytes(bundle.read_bytes() + b"\0" * 100)
    refused = rwq("plugin", "install", "alerts@1.0.0", "--registry", url)
    assert refused.returncode == 1
    assert "alerts-1.0.0.zip is larger than" in refused.stderr and "refused" in refused.stderr
    assert _installed() == {}


def test_a_path_out_of_the_registry_and_a_broken_index_are_refused(
    url: str, registry: Path
) -> None:
    index = json.loads((registry / "index.json").read_text())
    index["plugins"]["alerts"]["versions"]["1.1.0"]["bundle"] = "../../etc/passwd.zip"
    (registry / "index.json").write_text(json.dumps(index))
    refused = rwq("plugin", "install", "alerts", "--registry", url)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {url}index.json: index.json: plugins.alerts.")
    assert "not a path inside the registry" in refused.stderr
    (registry / "index.json").write_text("{")
    broken = rwq("plugin", "search", "x", "--registry", url)
    assert broken.returncode == 1 and "index.json is not JSON" in broken.stderr
    (registry / "index.json").unlink()
    missing = rwq("plugin", "search", "x", "--registry", url)
    assert missing.returncode == 1 and f"{url}: index.json: HTTP 404 Not Found" in missing.stderr
    nothing = rwq("plugin", "search", "x")
    assert nothing.returncode == 1 and "no plugin registry: set plugin_registries" in nothing.stderr


def test_require_signatures_refuses_unsigned_and_takes_trusted(
    url: str, registry: Path, tmp_path: Path
) -> None:
    require = {"RWQ_PLUGIN_SIGNATURES": "require"}
    refused = rwq("plugin", "install", "alerts", "--registry", url, **require)
    assert refused.returncode == 1
    assert "plugin_signatures is require and alerts is unsigned" in refused.stderr
    assert _installed() == {}

    key = tmp_path / "acme"
    assert rwq("plugin", "keygen", str(key), "--name", "acme").returncode == 0
    signed = make_bundle(tmp_path / "signed", "alerts", "1.2.0")
    assert rwq("plugin", "sign", str(signed), "--key", str(key)).returncode == 0
    published = rwq("plugin", "publish", str(signed), "--registry", str(registry))
    assert published.stdout.startswith("published alerts 1.2.0 to ")
    assert "(signed by acme (sha256:" in published.stdout
    same = rwq("plugin", "publish", str(signed), "--registry", str(registry))
    assert "alerts 1.2.0 is published already with the same contents" in same.stdout
    found = json.loads(rwq("plugin", "search", "alerts", "--registry", url, "--json").stdout)
    assert found[0]["signer"]["name"] == "acme"

    untrusted = rwq("plugin", "install", "alerts", "--registry", url, **require)
    assert untrusted.returncode == 1 and "not trusted" in untrusted.stderr
    assert rwq("plugin", "trust", "add", f"{key}.pub").returncode == 0
    trusted = rwq("plugin", "install", "alerts", "--registry", url, **require)
    assert trusted.returncode == 0, trusted.stderr
    assert "installed alerts 1.2.0" in trusted.stdout and "warning" not in trusted.stderr


def test_a_bundle_path_is_still_a_bundle_and_a_missing_one_is_named(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "local", "1.0.0")
    assert rwq("plugin", "install", str(bundle)).returncode == 0
    missing = rwq("plugin", "install", str(tmp_path / "gone.zip"))
    assert missing.returncode == 1 and "gone.zip: no such bundle" in missing.stderr
    bad = rwq("plugin", "install", "Not_A_Name")
    assert bad.returncode == 1 and "Not_A_Name" in bad.stderr
    bad_range = rwq("plugin", "install", "local@^^1", "--registry", str(tmp_path))
    assert bad_range.returncode == 1 and "^^1" in bad_range.stderr


def test_publish_writes_to_a_directory_only(tmp_path: Path) -> None:
    """A URL given to publish used to make a folder named `http:` in the current directory."""
    bundle = make_bundle(tmp_path / "work", "alerts", "1.0.0")
    for url in ("http://127.0.0.1:8765/", "https://example.org/reg"):
        refused = subprocess.run(
            [sys.executable, "-m", "rwq", "plugin", "publish", str(bundle), "--registry", url],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"--registry {url}: publish writes to a directory" in refused.stderr
        assert "static file server" in refused.stderr
    assert not (tmp_path / "http:").exists() and not (tmp_path / "https:").exists()

    registry = tmp_path / "reg"
    published = rwq("plugin", "publish", str(bundle), "--registry", registry.as_uri())
    assert published.returncode == 0, published.stderr
    assert (registry / "index.json").is_file()
    assert f"to {registry}/bundles/alerts/alerts-1.0.0.zip" in published.stdout


def test_publish_names_a_missing_bundle(tmp_path: Path) -> None:
    missing = rwq("plugin", "publish", str(tmp_path / "nothere.zip"), "--registry", str(tmp_path))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'nothere.zip'}: does not exist"


def test_install_says_when_the_grants_do_not_carry_over(tmp_path: Path) -> None:
    """An update that asked for more, or was signed by no one or another key, printed only
    "installed …" and then waited for approval unannounced."""
    key = tmp_path / "acme"
    assert rwq("plugin", "keygen", str(key), "--name", "acme").returncode == 0
    assert rwq("plugin", "trust", "add", f"{key}.pub").returncode == 0
    registry = tmp_path / "registry"
    for version, signed, permissions in [
        ("1.0.0", True, ("events.subscribe",)),
        ("1.1.0", True, ("events.subscribe",)),
        ("1.2.0", False, ("events.subscribe",)),
        ("1.3.0", False, ("events.subscribe", "storage.write")),
    ]:
        bundle = make_bundle(tmp_path / version, "alerts", version, permissions=permissions)
        if signed:
            assert rwq("plugin", "sign", str(bundle), "--key", str(key)).returncode == 0
        assert rwq("plugin", "publish", str(bundle), "--registry", str(registry)).returncode == 0

    def install(version: str) -> str:
        done = rwq("plugin", "install", f"alerts@{version}", "--replace", "--registry",
                   str(registry))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"installed alerts {version}" in done.stdout
        return done.stdout

    assert "approval" not in install("1.0.0")  # nothing granted yet: nothing to carry
    assert rwq("plugin", "grant", "alerts", "events.subscribe").returncode == 0
    assert "approval" not in install("1.1.0")  # the same trusted key, no more asked
    [listed] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert listed["granted"] == ["events.subscribe"]
    assert (
        "alerts 1.2.0: its grants do not carry over (this code is unsigned (or its signature "
        "is invalid), so a change needs approval): it waits for approval (rwq plugin grant, "
        "or the TUI's dialog)"
    ) in install("1.2.0")
    assert (
        "alerts 1.3.0 asks for storage.write besides what was granted: it waits for approval"
    ) in install("1.3.0")


def test_a_bundle_changed_inside_is_named_by_where_the_registry_serves_it(
    tmp_path: Path,
) -> None:
    """The error named the temporary file it was downloaded to (.download-XXXX/…)."""
    registry = tmp_path / "registry"
    assert publish(make_bundle(tmp_path / "work", "alerts", "1.0.0"), registry,
                   tmp_path / "publish-extracted").added  # fmt: skip
    bundle = registry / "bundles" / "alerts" / "alerts-1.0.0.zip"
    with zipfile.ZipFile(bundle) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    entries["main.star"] += b"# changed after it was packed\n"
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    index = json.loads((registry / "index.json").read_text())
    release = index["plugins"]["alerts"]["versions"]["1.0.0"]
    release["sha256"] = hashlib.sha256(bundle.read_bytes()).hexdigest()  # the index agrees
    release["size"] = bundle.stat().st_size
    (registry / "index.json").write_text(json.dumps(index))
    refused = rwq("plugin", "install", "alerts", "--registry", str(registry))
    assert refused.returncode == 1
    assert ".download-" not in refused.stderr
    assert f"{bundle}: main.star changed since it was packed; not installed" in refused.stderr


def test_bundles_and_registry_files_are_readable_by_others_keys_are_not(tmp_path: Path) -> None:
    """Packed, signed and published bundles and index.json were written 0600."""
    before = os.umask(0o022)
    try:
        made = make_bundle(tmp_path / "made", "alerts", "1.0.0", permissions=("storage.read",))
        source = made.parent.parent / "src"
        packed = rwq("plugin", "pack", str(source / "alerts-1.0.0"), "-o", str(tmp_path / "dist"))
        assert packed.returncode == 0, packed.stderr
        bundle = tmp_path / "dist" / "alerts-1.0.0.zip"
        assert bundle.stat().st_mode & 0o777 == 0o644
        key = tmp_path / "keys" / "acme"
        assert rwq("plugin", "keygen", str(key), "--name", "acme").returncode == 0
        assert rwq("plugin", "sign", str(bundle), "--key", str(key)).returncode == 0
        assert bundle.stat().st_mode & 0o777 == 0o644
        registry = tmp_path / "registry"
        assert rwq("plugin", "publish", str(bundle), "--registry", str(registry)).returncode == 0
        assert rwq("plugin", "install", str(bundle)).returncode == 0
        assert rwq("plugin", "grant", "alerts", "storage.read").returncode == 0
    finally:
        os.umask(before)
    for public in (registry / "index.json", registry / "bundles/alerts/alerts-1.0.0.zip"):
        assert public.stat().st_mode & 0o777 == 0o644, public
    assert key.stat().st_mode & 0o777 == 0o600
    grants = Path(os.environ["XDG_STATE_HOME"]) / "rwq" / "plugins" / "grants.json"
    assert grants.stat().st_mode & 0o777 == 0o600
