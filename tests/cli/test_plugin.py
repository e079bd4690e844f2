"""``rwq plugin``: real processes on a plugin fixture, in an isolated state dir."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from rwq.samples import SAMPLES_DIR

FIXTURE = Path(__file__).parents[1] / "plugins" / "fixtures" / "design-example"
SDK_STARLARK_HELLO = Path(__file__).parents[2] / "sdk" / "starlark" / "hello"


def rwq(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")} | settings
    return subprocess.run(
        [sys.executable, "-m", "rwq", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_validate_install_grant_revoke_audit(tmp_path: Path) -> None:
    valid = rwq("plugin", "validate", str(FIXTURE), "--json")
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout)["name"] == "tenant-sla-monitor"

    assert rwq("plugin", "install", str(FIXTURE)).returncode == 0
    again = rwq("plugin", "install", str(FIXTURE))
    assert again.returncode == 1 and "already installed" in again.stderr
    assert "--replace" in again.stderr
    assert rwq("plugin", "install", str(FIXTURE), "--replace").returncode == 0

    granted = rwq(
        "plugin", "grant", "tenant-sla-monitor", "events.subscribe", "--queues", "tenant.*"
    )
    assert granted.returncode == 0, granted.stderr
    [plugin] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert plugin["granted"] == ["events.subscribe"]
    assert set(plugin["pending"]) == {"admin.queue.peek", "admin.alerts.send"}
    # Its required dependency alert-manager is not installed: it cannot load.
    assert plugin["state"] == "refused" and "alert-manager" in plugin["reason"]

    assert rwq("plugin", "revoke", "tenant-sla-monitor").returncode == 0
    [plugin] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert plugin["granted"] == []

    records = json.loads(rwq("plugin", "audit", "--json").stdout)
    assert [r["kind"] for r in records if r["kind"] in {"grant", "revoke"}] == ["grant", "revoke"]


SCOPED_MANIFEST = """\
name: enqueuer
version: "1.0.0"
api_version: v1
runtime: starlark
entry_point: main.star
permissions:
  - name: admin.queue.enqueue
    scope:
      queues: ["a.*"]
"""


def test_a_cli_grant_is_never_wider_than_the_manifest_asks(tmp_path: Path) -> None:
    """`rwq plugin grant` used to grant on every queue, and any permission it was given."""
    plugin = tmp_path / "enqueuer"
    plugin.mkdir()
    (plugin / "manifest.yaml").write_text(SCOPED_MANIFEST, encoding="utf-8")
    (plugin / "main.star").write_text("def render(size):\n    return []\n", encoding="utf-8")
    assert rwq("plugin", "install", str(plugin)).returncode == 0

    wider = rwq("plugin", "grant", "enqueuer", "admin.queue.enqueue", "--queues", "b.*")
    assert wider.returncode == 1 and "Traceback" not in wider.stderr
    assert "--queues b.*: enqueuer asks for admin.queue.enqueue on a.* only" in wider.stderr
    unasked = rwq("plugin", "grant", "enqueuer", "admin.queue.purge")
    assert unasked.returncode == 1
    assert "enqueuer does not ask for admin.queue.purge" in unasked.stderr
    [listed] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert listed["granted"] == []  # nothing granted by the refused grants

    granted = rwq("plugin", "grant", "enqueuer", "admin.queue.enqueue")
    assert granted.returncode == 0, granted.stderr
    assert "granted admin.queue.enqueue to enqueuer 1.0.0 (unsigned) on a.*" in granted.stdout
    narrowed = rwq("plugin", "grant", "enqueuer", "admin.queue.enqueue", "--queues", "a.x")
    assert "on a.x" in narrowed.stdout


def test_pack_writes_a_bundle_that_installs(tmp_path: Path) -> None:
    packed = rwq("plugin", "pack", str(SDK_STARLARK_HELLO), "-o", str(tmp_path), "--json")
    assert packed.returncode == 0, packed.stderr
    result = json.loads(packed.stdout)
    bundle = Path(result["bundle"])
    assert bundle == tmp_path / "hello-starlark-0.1.0.zip"
    assert result["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    again = rwq("plugin", "pack", str(SDK_STARLARK_HELLO), "-o", str(tmp_path / "again"), "--json")
    assert json.loads(again.stdout)["sha256"] == result["sha256"]  # byte-identical
    assert rwq("plugin", "install", str(bundle)).returncode == 0
    missing = rwq("plugin", "pack", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "nowhere: does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_keygen_sign_verify_and_trust(tmp_path: Path) -> None:
    key = tmp_path / "acme"
    made = rwq("plugin", "keygen", str(key), "--name", "acme")
    assert made.returncode == 0, made.stderr
    fingerprint = re.search(r"sha256:[0-9a-f]{32}", made.stdout)
    assert fingerprint is not None
    bundle = tmp_path / "hello-starlark-0.1.0.zip"
    assert rwq("plugin", "pack", str(SDK_STARLARK_HELLO), "-o", str(tmp_path)).returncode == 0
    unsigned = rwq("plugin", "verify", str(bundle))
    assert unsigned.returncode == 1 and "unsigned" in unsigned.stdout

    signed = rwq("plugin", "sign", str(bundle), "--key", str(key))
    assert signed.returncode == 0, signed.stderr
    verified = json.loads(rwq("plugin", "verify", str(bundle), "--json").stdout)
    assert (verified["state"], verified["signer"], verified["trusted"]) == ("signed", "acme", False)
    assert verified["fingerprint"] == fingerprint.group()
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
    with (unpacked / "main.star").open("a") as fh:
        fh.write("# changed after signing\n")
    modified = rwq("plugin", "verify", str(unpacked))
    assert modified.returncode == 1
    assert "modified since signed: main.star" in modified.stdout

    assert rwq("plugin", "trust", "add", f"{key}.pub").returncode == 0
    listed = json.loads(rwq("plugin", "trust", "list", "--json").stdout)
    assert listed == [{"name": "acme", "fingerprint": fingerprint.group()}]
    assert json.loads(rwq("plugin", "verify", str(bundle), "--json").stdout)["trusted"] is True
    assert rwq("plugin", "install", str(bundle)).returncode == 0
    [plugin] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert plugin["signature"] == f"signed by acme ({fingerprint.group()}, trusted)"
    assert rwq("plugin", "trust", "remove", fingerprint.group()).returncode == 0
    assert json.loads(rwq("plugin", "trust", "list", "--json").stdout) == []

    again = rwq("plugin", "keygen", str(key), "--name", "acme")
    assert again.returncode == 1 and "never overwritten" in again.stderr
    assert "Traceback" not in again.stderr


def test_require_refuses_to_install_an_unsigned_bundle(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    install = [sys.executable, "-m", "rwq", "plugin", "install", str(SDK_STARLARK_HELLO)]
    refused = subprocess.run(
        install, capture_output=True, text=True, timeout=60,
        env={**env, "RWQ_PLUGIN_SIGNATURES": "require"},
    )  # fmt: skip
    assert refused.returncode == 1
    assert "not installed: plugin_signatures is require and hello-starlark is unsigned" in (
        refused.stderr
    )
    warned = rwq("plugin", "install", str(SDK_STARLARK_HELLO))  # warn, the default
    assert warned.returncode == 0
    assert "warning: hello-starlark 0.1.0 is unsigned: no signature" in warned.stderr


def test_invalid_manifest_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(FIXTURE, bad)
    manifest = bad / "manifest.yaml"
    text = manifest.read_text().replace('version: "1.2.3"', 'version: "one"')
    manifest.write_text(text.replace('max_memory: "10MB"', 'max_memory: "lots"'))
    result = rwq("plugin", "validate", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert str(manifest) in result.stderr
    assert "version" in result.stderr and "resources.max_memory" in result.stderr


def test_grant_unknown_plugin_is_a_clear_error() -> None:
    result = rwq("plugin", "grant", "ghost", "observer")
    assert result.returncode == 1 and "no plugin named 'ghost'" in result.stderr


def test_run_hosts_plugins_headless_with_prometheus_metrics(
    tmp_path: Path, valkey_url: str, redis_client: object
) -> None:
    """`rwq plugin run`: a policy pre-grants, queue events reach the plugin, and its
    figures are on the metrics endpoint."""
    import socket
    import time
    import urllib.request

    plugins = tmp_path / "plugins"
    shutil.copytree(SDK_STARLARK_HELLO, plugins / "hello-starlark")
    policy = tmp_path / "policy.yaml"
    policy.write_text("plugins:\n  hello-starlark:\n    grant: [events.subscribe]\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"RWQ_REDIS_URL": valkey_url, "RWQ_PLUGIN_DIRS": str(plugins)}
    host = subprocess.Popen(
        [sys.executable, "-m", "rwq", "plugin", "run", "--policy", str(policy),
         "--metrics-port", str(port), "--duration", "30s"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        body = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            subprocess.run(
                [sys.executable, "-m", "rwq", "enqueue", "tenant.a", "1"],
                env=env, capture_output=True, timeout=30,
            )  # fmt: skip
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            except OSError:
                time.sleep(0.3)
                continue
            text = body.decode()
            if 'rwq_plugin_calls_total{hook="on_event",plugin="hello-starlark"}' in text:
                break
            time.sleep(0.3)
        text = body.decode() if body else ""
        assert 'rwq_plugin_calls_total{hook="on_event",plugin="hello-starlark"}' in text, text
    finally:
        host.terminate()
        out, err = host.communicate(timeout=30)
    assert host.returncode == 0, err
    assert "hello-starlark: active" in out


def test_reload_reaches_a_running_host_and_says_how_it_went(
    tmp_path: Path, valkey_url: str, redis_client: object
) -> None:
    """`rwq plugin reload` against a real `rwq plugin run` (not watching: only the request
    reloads): no host, unknown plugin, a reload, and a version refused at initialize."""
    import time

    plugins = tmp_path / "plugins"
    hello = plugins / "hello-starlark"
    shutil.copytree(SDK_STARLARK_HELLO, hello)
    policy = tmp_path / "policy.yaml"
    policy.write_text("plugins:\n  hello-starlark:\n    grant: [events.subscribe]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}
    env |= {"RWQ_REDIS_URL": valkey_url, "RWQ_PLUGIN_DIRS": str(plugins),
            "RWQ_PREFIX": "reloadtest"}  # fmt: skip

    def reload(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rwq", "plugin", "reload", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    alone = reload("hello-starlark", "--timeout", "2s")
    assert alone.returncode == 1
    assert "no running plugin host received it" in alone.stderr
    assert "rwq plugin run" in alone.stderr and "Traceback" not in alone.stderr

    host = subprocess.Popen(
        [sys.executable, "-m", "rwq", "plugin", "run", "--policy", str(policy), "--no-watch",
         "--duration", "60s"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        unknown = reload("ghost")
        while "no running plugin host" in unknown.stderr and time.monotonic() < deadline:
            time.sleep(0.2)
            unknown = reload("ghost")
        assert unknown.returncode == 1, unknown.stderr
        assert "ghost unknown plugin: no plugin named 'ghost'" in unknown.stdout
        assert "it runs: hello-starlark" in unknown.stdout

        manifest = hello / "manifest.yaml"
        manifest.write_text(manifest.read_text().replace("version: 0.1.0", "version: 0.1.1"))
        ok = reload("hello-starlark", "--json")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        answer = json.loads(ok.stdout)
        assert (answer["received"], answer["ok"]) == (1, True)
        [reply] = answer["replies"]
        assert (reply["old_version"], reply["new_version"]) == ("0.1.0", "0.1.1")
        assert reply["outcome"] == "reloaded" and reply["host"].endswith(f":{host.pid}")

        manifest.write_text(manifest.read_text().replace("version: 0.1.1", "version: 0.1.2"))
        main = hello / "main.star"
        main.write_text(main.read_text().replace(
            "def initialize(config):\n", "def initialize(config):\n    fail(\"no greeting\")\n"
        ))  # fmt: skip
        broken = reload("hello-starlark")
        assert broken.returncode == 1
        assert "hello-starlark 0.1.2 failed:" in broken.stdout
        assert "no greeting" in broken.stdout and "(running 0.1.1)" in broken.stdout

        # 0.1.3 loads but faults on its first events: rolled back within its probation.
        manifest.write_text(manifest.read_text().replace("version: 0.1.2", "version: 0.1.3"))
        main.write_text(
            main.read_text()
            .replace('    fail("no greeting")\n', "")
            .replace("def on_event(events):\n", 'def on_event(events):\n    fail("bad event")\n')
        )
        stop = threading.Event()

        def enqueue() -> None:
            while not stop.wait(0.3):
                subprocess.run(
                    [sys.executable, "-m", "rwq", "enqueue", "tenant.a", "1"],
                    env=env, capture_output=True, timeout=30,
                )  # fmt: skip

        feeder = threading.Thread(target=enqueue)
        feeder.start()
        try:
            rolled = reload("hello-starlark", "--wait-probation", "--timeout", "30s")
        finally:
            stop.set()
            feeder.join()
        assert rolled.returncode == 1, rolled.stdout + rolled.stderr
        assert "hello-starlark 0.1.3 rolled back: faulted within 2s (" in rolled.stdout
        # back to 0.1.1 or, if 0.1.3 came within 0.1.1's probation, to 0.1.0
        assert re.search(r"back to (0\.1\.[01]) \(running \1\)", rolled.stdout), rolled.stdout
    finally:
        host.terminate()
        out, err = host.communicate(timeout=30)
    assert host.returncode == 0, err
    assert "control: listening as" in out


HOSTILE_TEXT = Path(__file__).parents[1] / "tui" / "fixtures" / "hostile-text"


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ("description: !!bool maybe", ("manifest.yaml", "line", "!!bool cannot read 'maybe'")),
        ("description: !!int abc", ("!!int cannot read 'abc'",)),
        ("description: !!timestamp foo", ("!!timestamp cannot read 'foo'",)),
        ('resources: {max_memory: "' + "1" * 400 + '"}', ("resources.max_memory", "a size")),
        ('config: {"\\udc80": 1}', ("lone surrogate",)),
        ('ui: {panel_title: "\\e[2J\\e]0;pwn\\a"}', ("ui.panel_title", "control character \\x1b")),
    ],
)
def test_hostile_manifests_are_clean_errors_in_every_command(
    tmp_path: Path, change: str, needles: tuple[str, ...]
) -> None:
    plugin = tmp_path / "hostile"
    shutil.copytree(HOSTILE_TEXT, plugin)
    manifest = plugin / "manifest.yaml"
    kept = [
        line for line in manifest.read_text().splitlines()
        if not line.startswith(change.split(":")[0] + ":")
        and not (change.startswith(("ui:", "resources:")) and line.startswith("  "))
    ]  # fmt: skip
    manifest.write_text("\n".join([*kept, change, ""]))
    for command in (("validate",), ("check",), ("install",)):
        result = rwq("plugin", *command, str(plugin))
        assert result.returncode in (1, 2), (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        for needle in needles:
            assert needle in result.stderr + result.stdout, (command, needle, result.stderr)


def test_hostile_plugin_text_is_printed_as_text(tmp_path: Path) -> None:
    assert rwq("plugin", "install", str(HOSTILE_TEXT)).returncode == 0
    listed = rwq("plugin", "list")
    assert listed.returncode == 0, listed.stderr
    try:
        checked = rwq("plugin", "check", str(HOSTILE_TEXT), "--grant", "ui.notifications")
    finally:
        rwq("server", "stop")  # the embedded Valkey the check started
    assert checked.returncode == 0, checked.stderr
    for out in (listed.stdout, checked.stdout, checked.stderr):
        assert "\x1b" not in out and "\u202e" not in out and "\u2764" not in out


REPO_PLUGINS = SAMPLES_DIR


def test_discovery_never_reads_the_current_directory(tmp_path: Path) -> None:
    """From the repo root, `./plugins` was scanned too: an installed sample then vanished
    ("installed more than once") and grant said "no plugin named ..."."""
    shutil.copytree(REPO_PLUGINS / "bulk-operations", tmp_path / "plugins" / "bulk-operations")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWQ_")}

    def here(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rwq", *args], capture_output=True,
                              text=True, env=env, timeout=60, cwd=tmp_path)  # fmt: skip

    assert json.loads(here("plugin", "list", "--json").stdout)["plugins"] == []
    assert here("plugin", "install", "plugins/bulk-operations").returncode == 0
    [plugin] = json.loads(here("plugin", "list", "--json").stdout)["plugins"]
    assert plugin["name"] == "bulk-operations" and plugin["state"] == "installed"
    granted = here("plugin", "grant", "bulk-operations", "admin.queue.peek")
    assert granted.returncode == 0, granted.stderr
    env["RWQ_PLUGIN_DIRS"] = str(tmp_path / "plugins")  # the same plugin twice: said so
    listed = json.loads(here("plugin", "list", "--json").stdout)
    assert any("more than once" in e for e in listed["errors"].values()) or any(
        "more than once" in p["reason"] for p in listed["plugins"]
    )


def test_plugins_dir_must_exist(tmp_path: Path) -> None:
    for command in (("plugin", "run", "--duration", "1s"), ("tui",)):
        result = rwq(*command, "--plugins-dir", str(tmp_path / "nope"))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"--plugins-dir: {tmp_path / 'nope'} is not a directory" in result.stderr


def test_remove_keeps_data_unless_purged(tmp_path: Path) -> None:
    sample = REPO_PLUGINS / "alert-manager"
    assert rwq("plugin", "install", str(sample)).returncode == 0
    assert rwq("plugin", "grant", "alert-manager", "storage.read").returncode == 0
    from rwq.config import Settings
    from rwq.connection import connect
    from rwq.plugins.host_api.storage import PluginStorage
    from rwq.plugins.package.user_config import ConfigStore
    from rwq.plugins.trust.grants import GrantStore
    from rwq.queue.keys import Keys

    try:
        settings = Settings.load(env={})
        storage = PluginStorage(connect(settings), Keys(settings.prefix), "alert-manager",
                                max_keys=10, max_bytes=10_000)  # fmt: skip
        storage.set("k", '"v"')
        ConfigStore.from_settings(settings).set("alert-manager", {"x": 1})

        removed = rwq("plugin", "remove", "alert-manager")
        assert removed.returncode == 0 and "kept" in removed.stdout
        assert json.loads(rwq("plugin", "list", "--json").stdout)["plugins"] == []
        assert storage.get("k") == '"v"'
        assert GrantStore.from_settings(settings).grants_for("alert-manager")
        again = rwq("plugin", "remove", "alert-manager")
        assert again.returncode == 1 and "not installed" in again.stderr

        assert rwq("plugin", "install", str(sample)).returncode == 0
        purged = rwq("plugin", "remove", "alert-manager", "--purge-data")
        assert purged.returncode == 0, purged.stderr
        assert storage.get("k") is None
        assert not GrantStore.from_settings(settings).grants_for("alert-manager")
        assert ConfigStore.from_settings(settings).get("alert-manager") == {}
    finally:
        rwq("server", "stop")  # the embedded Valkey these commands started


def test_install_copies_only_the_checked_files(tmp_path: Path) -> None:
    """A link inside an ignored folder (.git) passed the check, and the installed copy held
    the file it pointed to."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    plugin = tmp_path / "bulk-operations"
    shutil.copytree(REPO_PLUGINS / "bulk-operations", plugin)
    (plugin / ".git").mkdir()
    (plugin / ".git" / "config").symlink_to(secret)
    installed = rwq("plugin", "install", str(plugin))
    assert installed.returncode == 0, installed.stderr
    target = Path(installed.stdout.strip().rsplit(" to ", 1)[1])
    assert sorted(p.name for p in target.iterdir()) == sorted(
        p.name for p in plugin.iterdir() if p.name != ".git"
    )
    assert not any("top secret" in p.read_text() for p in target.rglob("*") if p.is_file())


def test_revoke_names_an_unknown_plugin_and_still_takes_a_removed_ones_grants() -> None:
    """A typo used to say "had none of those permissions" and exit 0."""
    assert rwq("plugin", "install", str(SDK_STARLARK_HELLO)).returncode == 0
    typo = rwq("plugin", "revoke", "hello-starlrk")
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    assert "no plugin named 'hello-starlrk'" in typo.stderr
    assert "(known: hello-starlark)" in typo.stderr
    none = rwq("plugin", "revoke", "hello-starlark")  # installed, nothing granted
    assert none.returncode == 0 and "had none of those permissions" in none.stdout

    assert rwq("plugin", "grant", "hello-starlark", "events.subscribe").returncode == 0
    assert rwq("plugin", "remove", "hello-starlark").returncode == 0
    leftover = rwq("plugin", "revoke", "hello-starlark")  # its grants were kept
    assert leftover.returncode == 0, leftover.stderr
    assert "revoked events.subscribe from hello-starlark" in leftover.stdout


def test_sign_names_a_missing_private_key_and_a_public_key_given_for_it(tmp_path: Path) -> None:
    """`--key nokey` said "nokey.pub is missing: give --name"; `--key acme.pub` said
    "acme.pub.pub is missing"."""
    assert rwq("plugin", "pack", str(SDK_STARLARK_HELLO), "-o", str(tmp_path)).returncode == 0
    bundle = tmp_path / "hello-starlark-0.1.0.zip"
    key = tmp_path / "acme"
    assert rwq("plugin", "keygen", str(key), "--name", "acme").returncode == 0
    missing = rwq("plugin", "sign", str(bundle), "--key", str(tmp_path / "nokey"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"--key {tmp_path / 'nokey'}: the private key file does not exist" in missing.stderr
    for extra in ((), ("--name", "acme")):
        public = rwq("plugin", "sign", str(bundle), "--key", f"{key}.pub", *extra)
        assert public.returncode == 1 and "Traceback" not in public.stderr
        assert "that is a public key; --key takes the private key (acme, without .pub)" in (
            public.stderr
        )
    assert rwq("plugin", "sign", str(bundle), "--key", str(key)).returncode == 0


def test_keygen_makes_the_missing_folders_private(tmp_path: Path) -> None:
    """`rwq plugin keygen ~/.rwq/acme` failed on a fresh machine: no such file or directory."""
    key = tmp_path / "home" / ".rwq" / "acme"
    made = rwq("plugin", "keygen", str(key), "--name", "acme")
    assert made.returncode == 0, made.stderr
    assert key.is_file() and key.with_name("acme.pub").is_file()
    for folder in (tmp_path / "home", key.parent):
        assert folder.stat().st_mode & 0o777 == 0o700
    assert key.stat().st_mode & 0o777 == 0o600


def _installed_dir() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "rwq" / "plugins" / "installed"


def _tamper(bundle: Path) -> None:
    """Change main.star inside the zip ``bundle`` (its file list no longer matches)."""
    _tamper_file(bundle, "main.star")


def _tamper_file(bundle: Path, name: str) -> None:
    """Change the file ``name`` inside the zip ``bundle`` (its file list no longer matches)."""
    with zipfile.ZipFile(bundle) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    entries[name] += b"# edited inside the zip\n"
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_list_says_no_valid_plugins_and_names_an_invalid_bundle_once(tmp_path: Path) -> None:
    """It said "no plugins installed", then "invalid PATH: PATH: main.star changed…"."""
    assert rwq("plugin", "pack", str(SDK_STARLARK_HELLO), "-o", str(tmp_path)).returncode == 0
    assert rwq("plugin", "install", str(tmp_path / "hello-starlark-0.1.0.zip")).returncode == 0
    installed = _installed_dir() / "hello-starlark.zip"
    _tamper(installed)
    listed = rwq("plugin", "list")
    assert listed.returncode == 0, listed.stderr
    assert "no plugins installed" not in listed.stdout
    assert listed.stdout.startswith("no valid plugins")
    assert f"invalid {installed}: main.star changed" in listed.stdout
    assert listed.stdout.count(str(installed)) == 1


def test_list_shows_a_plugin_require_refuses(tmp_path: Path) -> None:
    """Under plugin_signatures: require an unsigned plugin was listed as installed, with no
    reason, though no host loads it."""
    assert rwq("plugin", "install", str(SDK_STARLARK_HELLO)).returncode == 0
    [plugin] = json.loads(rwq("plugin", "list", "--json").stdout)["plugins"]
    assert (plugin["state"], plugin["reason"]) == ("installed", "")
    require = {"RWQ_PLUGIN_SIGNATURES": "require"}
    [plugin] = json.loads(rwq("plugin", "list", "--json", **require).stdout)["plugins"]
    assert plugin["state"] == "refused"
    assert plugin["reason"] == (
        "plugin_signatures is require and hello-starlark is unsigned: no signature"
    )
    table = rwq("plugin", "list", **require)
    assert "refused hello-starlark: plugin_signatures is require" in table.stdout


def test_run_says_why_a_plugin_is_refused_and_which_bundles_are_invalid(
    tmp_path: Path, valkey_url: str, redis_client: object
) -> None:
    """Text output showed only "hello-starlark: error", and nothing of an invalid bundle."""
    plugins = tmp_path / "plugins"
    shutil.copytree(SDK_STARLARK_HELLO, plugins / "hello-starlark")
    assert rwq("plugin", "pack", str(FIXTURE), "-o", str(tmp_path)).returncode == 0
    [packed] = tmp_path.glob("tenant-sla-monitor-*.zip")
    broken = plugins / "broken.zip"
    shutil.copy(packed, broken)
    _tamper_file(broken, "manifest.yaml")
    ran = rwq(
        "plugin", "run", "--duration", "1s", "--no-watch", "--plugins-dir", str(plugins),
        RWQ_REDIS_URL=valkey_url, RWQ_PLUGIN_SIGNATURES="require",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    refusal = "plugin_signatures is require and hello-starlark is unsigned: no signature"
    assert f"hello-starlark: error: {refusal}" in ran.stdout
    assert f"hello-starlark: error ({refusal}), 0 calls" in ran.stdout
    assert f"invalid {broken}: manifest.yaml changed since it was packed" in ran.stdout


def test_trust_add_names_a_missing_key_file(tmp_path: Path) -> None:
    """It showed "cannot read the public key: [Errno 2] No such file or directory: …"."""
    missing = rwq("plugin", "trust", "add", str(tmp_path / "missing.pub"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: {tmp_path / 'missing.pub'} does not exist"
    (tmp_path / "binary.pub").write_bytes(b"\xff\xfe")
    binary = rwq("plugin", "trust", "add", str(tmp_path / "binary.pub"))
    assert binary.returncode == 1 and "not a public key" in binary.stderr
