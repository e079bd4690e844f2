"""Building a plugin's module from its sources: C with clang to a wasm32-wasi reactor (the
flags of ``sdk/c/build.sh``), AssemblyScript with the plugin's pinned ``asc`` (those of
``sdk/assemblyscript/build.sh``); a Starlark plugin needs no build.

:func:`build_plugin` returns a :class:`BuildResult` whatever the compiler said; only a
missing toolchain (:class:`ToolchainMissing`) or a directory that is not a plugin
(:class:`BuildInputError`) raise.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rwq.errors import RwqError
from rwq.plugins.package.manifest import find_manifest, load_manifest
from rwq.toolkit.asc import CompilerGone, WarmCompiler

__all__ = [
    "ASC_FLAGS",
    "C_FLAGS",
    "DEV_SECTION",
    "BuildInputError",
    "BuildResult",
    "Language",
    "ToolchainMissing",
    "build_plugin",
    "detect_language",
    "dev_module",
    "is_dev_build",
    "warm_up",
]

log = logging.getLogger(__name__)

Language = Literal["starlark", "c", "assemblyscript"]
Profile = Literal["release", "dev"]
"""``release``: optimized, as ``rwq plugin build`` makes it. ``dev``: unoptimized, several
times faster to build, marked as a development build (``rwq plugin dev``'s saves)."""

C_FLAGS = (
    "--target=wasm32-wasi",
    # a reactor: _initialize runs the constructors once; a command module (_start) would run
    # them again on every call. Exports come from export_name attributes (rwq.h).
    "-mexec-model=reactor",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
)
C_LINK_FLAGS = ("-Wl,-z,stack-size=65536", "-Wl,--strip-debug")
ASC_FLAGS = (
    "--use",
    "abort=rwqAbort",  # the host links no env.abort: the SDK's writes to stderr and traps
    "--runtime",
    "incremental",
    "--exportStart",
    "_initialize",  # top-level code runs once after instantiation (a WASI reactor)
)
OPTIMIZE: dict[tuple[Language, Profile], str] = {
    ("c", "release"): "-O2",
    ("c", "dev"): "-O0",
    ("assemblyscript", "release"): "-O3",
    ("assemblyscript", "dev"): "-O0",
}
DEV_SECTION = "rwq.dev-build"
"""The custom section marking a module built by ``rwq plugin dev``: ``rwq plugin pack``
refuses it."""
AS_LIBRARY = "lib"
"""The plugin's folder holding the AssemblyScript SDK (``rwq.ts``, ``exports.ts``)."""
BUILD_TIMEOUT = 300.0

C_TOOLCHAIN_HINT = (
    "install the Debian packages clang lld wasi-libc libclang-rt-14-dev-wasm32 "
    "(in the rwq repository: make toolchains)"
)


class BuildInputError(RwqError):
    """The path given to build is not a plugin that can be built: names it and why."""


class ToolchainMissing(RwqError):
    """A compiler or library the build needs is not installed: says what to install."""


@dataclass(frozen=True)
class BuildResult:
    """One build of one plugin: what ran, what it said, how long it took."""

    plugin: Path
    language: Language
    ok: bool
    output: str = ""
    """The compiler's own output (stdout and stderr), as it printed it."""
    duration: float = 0.0
    """Seconds the build took."""
    artifact: Path | None = None
    """The module written (the manifest's entry point); None when nothing was built."""
    command: tuple[str, ...] = ()
    profile: Profile = "release"
    notes: tuple[str, ...] = field(default=())
    """What the toolkit has to add: a hint after a failure, a version mismatch."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": str(self.plugin),
            "language": self.language,
            "ok": self.ok,
            "output": self.output,
            "duration_s": round(self.duration, 3),
            "artifact": str(self.artifact) if self.artifact else None,
            "command": shlex.join(self.command) if self.command else "",
            "profile": self.profile,
            "notes": list(self.notes),
        }


def detect_language(path: Path) -> tuple[Language, Path]:
    """The plugin's language and its entry point (from the manifest and the sources beside it).

    Raises:
        BuildInputError: not a plugin directory, an invalid manifest, or no sources.
    """
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise BuildInputError(f"{path} {what}: give a plugin directory (with manifest.yaml)")
    manifest_path = find_manifest(path)
    if manifest_path is None:
        raise BuildInputError(f"{path} has no manifest.yaml: not a plugin directory")
    manifest = load_manifest(manifest_path)
    entry = path / manifest.entry_point
    if manifest.runtime == "starlark":
        return "starlark", entry
    if _c_sources(path):
        return "c", entry
    if _as_entry(path) is not None:
        return "assemblyscript", entry
    raise BuildInputError(
        f"{path}: no sources to build {manifest.entry_point} from "
        "(C: *.c or src/*.c; AssemblyScript: main.ts or assembly/index.ts)"
    )


def build_plugin(
    path: Path,
    *,
    env: dict[str, str] | None = None,
    profile: Profile = "release",
    warm: WarmCompiler | None = None,
) -> BuildResult:
    """Build the plugin at ``path`` into its manifest's entry point.

    The compiler writes a hidden file beside the entry point, renamed over it only when the
    build succeeded: a failed build leaves the last module, and a hot reload never reads a
    module half written.

    Args:
        path: a plugin directory.
        env: the environment the compiler runs in (default: this process's); ``PATH``
            finds the tools, ``CC`` and ``CFLAGS`` (C) or ``ASCFLAGS`` are honoured.
        profile: ``release`` (optimized) or ``dev`` (unoptimized and marked, see
            :data:`DEV_SECTION`).
        warm: compile AssemblyScript in this compiler process instead of a new ``node``.

    Raises:
        BuildInputError: not a plugin with sources.
        ToolchainMissing: the compiler is not installed (the message says what to install).
    """
    environ = dict(os.environ if env is None else env)
    language, entry = detect_language(path)
    if language == "starlark":
        return BuildResult(path, language, True, profile=profile)
    output_file = entry.with_name(f".{entry.name}.building")
    if language == "c":
        command, notes = _c_command(path, output_file, environ, profile)
    else:
        command, notes = _as_command(path, output_file, environ, profile)
    started = time.perf_counter()
    try:
        ok, output = _compile(path, command, language, environ, warm)
    except subprocess.TimeoutExpired:
        ok, output = False, f"the build took longer than {BUILD_TIMEOUT:g}s"
    finally:
        duration = time.perf_counter() - started
    ok = ok and output_file.is_file()
    if ok:
        if profile == "dev":
            mark_dev_build(output_file)
        os.replace(output_file, entry)
    else:
        output_file.unlink(missing_ok=True)
        if language == "c":
            notes.extend(_c_failure_hints(output))
    return BuildResult(
        path, language, ok, output, duration, entry if ok else None, tuple(command), profile,
        tuple(notes),
    )  # fmt: skip


def _compile(
    path: Path,
    command: list[str],
    language: Language,
    env: dict[str, str],
    warm: WarmCompiler | None,
) -> tuple[bool, str]:
    """Run the compiler: whether it succeeded, and its output."""
    if warm is not None and language == "assemblyscript":
        node, asc_js, *args = command
        try:
            return warm.compile(node, _asc_module(Path(asc_js)), path, args, BUILD_TIMEOUT)
        except CompilerGone as exc:  # built the usual way; the next save starts another
            log.warning("%s", exc)
    try:
        done = subprocess.run(
            command,
            cwd=path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:  # between the check and the run, or a broken shebang
        raise ToolchainMissing(f"cannot run {command[0]}: {exc.strerror}") from None
    return done.returncode == 0, done.stdout.decode("utf-8", "replace")


def _relative(output: Path, path: Path) -> str:
    return str(output.relative_to(path)) if output.is_relative_to(path) else str(output)


def warm_up(path: Path, warm: WarmCompiler, rounds: int, stop: threading.Event) -> None:
    """Compile the AssemblyScript plugin at ``path`` ``rounds`` times into a throwaway file
    (until ``stop``): a compiler that has run a few times compiles several times faster, so
    the author's first saves are as quick as the later ones. Failures are ignored: the
    builds that count say what went wrong."""
    with tempfile.TemporaryDirectory(prefix="rwq-asc-warm-") as tmp:
        try:
            command, _ = _as_command(path, Path(tmp) / "warm.wasm", dict(os.environ), "dev")
        except RwqError:
            return
        node, asc_js, *args = command
        for _ in range(rounds):
            if stop.is_set():
                return
            try:
                warm.compile(node, _asc_module(Path(asc_js)), path, args, BUILD_TIMEOUT)
            except CompilerGone:
                return


def _asc_module(asc_bin: Path) -> Path:
    """The compiler's module beside its ``bin/asc.js``: what the warm compiler imports."""
    return asc_bin.parent.parent / "dist" / "asc.js"


# -- development builds -------------------------------------------------------------------------


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def mark_dev_build(module: Path) -> None:
    """Append the :data:`DEV_SECTION` custom section to the module at ``module``."""
    name = DEV_SECTION.encode()
    payload = _leb128(len(name)) + name + b"rwq plugin dev: unoptimized"
    with module.open("ab") as f:
        f.write(b"\x00" + _leb128(len(payload)) + payload)


def is_dev_build(module: bytes) -> bool:
    """Whether ``module`` (a WebAssembly binary) carries the :data:`DEV_SECTION` section."""
    if module[:4] != b"\0asm":
        return False
    at = 8
    while at < len(module):
        section, at = module[at], at + 1
        size, at = _read_leb128(module, at)
        end = at + size
        if section == 0:
            length, name_at = _read_leb128(module, at)
            if module[name_at : name_at + length] == DEV_SECTION.encode():
                return True
        at = end
    return False


def dev_module(path: Path) -> Path | None:
    """The module of the plugin directory ``path`` when it is a development build (None when
    it is not, or there is no valid manifest or module to look at)."""
    manifest_path = find_manifest(path) if path.is_dir() else None
    if manifest_path is None:
        return None
    try:
        entry = path / load_manifest(manifest_path).entry_point
        with entry.open("rb") as f:
            return entry if is_dev_build(f.read()) else None
    except (RwqError, OSError):
        return None


def _read_leb128(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data):
        byte, at = data[at], at + 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return value, at


# -- C ----------------------------------------------------------------------------------------


def _c_sources(path: Path) -> list[Path]:
    return sorted(path.glob("*.c")) or sorted((path / "src").glob("*.c"))


def _c_command(
    path: Path, output: Path, env: dict[str, str], profile: Profile
) -> tuple[list[str], list[str]]:
    compiler = env.get("CC") or "clang"
    found = shutil.which(compiler, path=env.get("PATH", os.defpath))
    if found is None:
        raise ToolchainMissing(f"{compiler} not found on PATH: {C_TOOLCHAIN_HINT}")
    if shutil.which("wasm-ld", path=env.get("PATH", os.defpath)) is None:
        raise ToolchainMissing(f"wasm-ld (the WebAssembly linker) not found: {C_TOOLCHAIN_HINT}")
    sources = [str(s.relative_to(path)) for s in _c_sources(path)]
    includes = ["-I."] + (["-Isrc"] if (path / "src").is_dir() else [])
    command = [
        found, *C_FLAGS, OPTIMIZE["c", profile], *shlex.split(env.get("CFLAGS", "")),
        *includes, *C_LINK_FLAGS, "-o", _relative(output, path), *sources,
    ]  # fmt: skip
    return command, []


def _c_failure_hints(output: str) -> list[str]:
    """What a failed C build's output says about the toolchain, in a line."""
    if "wasm32-wasi" in output and (
        "stdlib.h' file not found" in output
        or "stdio.h' file not found" in output
        or "unable to find library -lc" in output
    ):
        return [f"wasi-libc is missing: {C_TOOLCHAIN_HINT}"]
    if "libclang_rt.builtins-wasm32.a" in output:
        return [f"the wasm32 compiler runtime is missing: {C_TOOLCHAIN_HINT}"]
    return []


# -- AssemblyScript -----------------------------------------------------------------------------


def _as_entry(path: Path) -> Path | None:
    for candidate in (path / "main.ts", path / "assembly" / "index.ts"):
        if candidate.is_file():
            return candidate
    return None


def _find_package(path: Path, package: str) -> Path | None:
    """``node_modules/<package>`` as Node resolves it from ``path``: here, then upwards."""
    for directory in [path.resolve(), *path.resolve().parents]:
        found = directory / "node_modules" / package
        if (found / "package.json").is_file():
            return found
    return None


def _pinned_version(path: Path) -> str | None:
    try:
        data = json.loads((path / "package.json").read_text(encoding="utf-8"))
        pinned = data.get("devDependencies", {}).get("assemblyscript") or data.get(
            "dependencies", {}
        ).get("assemblyscript")
    except (OSError, ValueError, AttributeError):
        return None
    return pinned if isinstance(pinned, str) else None


def _as_command(
    path: Path, output: Path, env: dict[str, str], profile: Profile
) -> tuple[list[str], list[str]]:
    node = shutil.which("node", path=env.get("PATH", os.defpath))
    if node is None:
        raise ToolchainMissing(
            "node not found on PATH: install Node.js 20 or later (Debian: nodejs npm), "
            f"then run npm ci in {path}"
        )
    compiler = _find_package(path, "assemblyscript")
    asc = compiler / "bin" / "asc.js" if compiler else None
    if asc is None or not asc.is_file():
        where = (
            "npm ci" if (path / "package-lock.json").is_file() else "npm install"
        ) + f" in {path}"
        raise ToolchainMissing(
            f"the AssemblyScript compiler (asc) is not installed for {path}: run {where} "
            "(it installs the compiler package.json pins into the plugin's node_modules)"
        )
    assert compiler is not None
    notes = []
    pinned = _pinned_version(path)
    installed = _package_version(compiler)
    if pinned and installed and pinned.lstrip("=v") != installed:
        notes.append(
            f"package.json pins assemblyscript {pinned} but {compiler} is {installed}: "
            "run npm ci to build with the pinned compiler"
        )
    source = _as_entry(path)
    assert source is not None
    library = path / AS_LIBRARY
    if not (library / "rwq.ts").is_file() or not (library / "exports.ts").is_file():
        raise BuildInputError(
            f"{path}: no {AS_LIBRARY}/rwq.ts and {AS_LIBRARY}/exports.ts (the AssemblyScript "
            "SDK; rwq plugin new --lang assemblyscript writes them)"
        )
    command = [
        node, str(asc), f"{AS_LIBRARY}/exports.ts", str(source.relative_to(path)),
        "--lib", AS_LIBRARY, *ASC_FLAGS, OPTIMIZE["assemblyscript", profile],
        *shlex.split(env.get("ASCFLAGS", "")), "-o", _relative(output, path),
    ]  # fmt: skip
    return command, notes


def _package_version(package: Path) -> str | None:
    try:
        version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None
