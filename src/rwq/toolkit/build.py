"""Building a plugin's module from its sources: C with clang to a wasm32-wasi reactor (the
flags of ``sdk/c/build.sh``), AssemblyScript with the plugin's pinned ``asc`` (those of
``sdk/assemblyscript/build.sh``); a Starlark plugin needs no build.

:func:`build_plugin` returns a :class:`BuildResult` whatever the compiler said; only a
missing toolchain (:class:`ToolchainMissing`) or a directory that is not a plugin
(:class:`BuildInputError`) raise.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rwq.errors import RwqError
from rwq.plugins.package.manifest import find_manifest, load_manifest

__all__ = [
    "ASC_FLAGS",
    "C_FLAGS",
    "BuildInputError",
    "BuildResult",
    "Language",
    "ToolchainMissing",
    "build_plugin",
    "detect_language",
]

Language = Literal["starlark", "c", "assemblyscript"]

C_FLAGS = (
    "--target=wasm32-wasi",
    # a reactor: _initialize runs the constructors once; a command module (_start) would run
    # them again on every call. Exports come from export_name attributes (rwq.h).
    "-mexec-model=reactor",
    "-O2",
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
    "-O3",
)
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


def build_plugin(path: Path, *, env: dict[str, str] | None = None) -> BuildResult:
    """Build the plugin at ``path`` into its manifest's entry point.

    Args:
        path: a plugin directory.
        env: the environment the compiler runs in (default: this process's); ``PATH``
            finds the tools, ``CC`` and ``CFLAGS`` (C) or ``ASCFLAGS`` are honoured.

    Raises:
        BuildInputError: not a plugin with sources.
        ToolchainMissing: the compiler is not installed (the message says what to install).
    """
    environ = dict(os.environ if env is None else env)
    language, entry = detect_language(path)
    if language == "starlark":
        return BuildResult(path, language, True)
    if language == "c":
        command, notes = _c_command(path, entry, environ)
    else:
        command, notes = _as_command(path, entry, environ)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=path,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:  # between the check and the run, or a broken shebang
        raise ToolchainMissing(f"cannot run {command[0]}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        return BuildResult(
            path, language, False, f"the build took longer than {BUILD_TIMEOUT:g}s",
            time.perf_counter() - started, None, tuple(command), tuple(notes),
        )  # fmt: skip
    duration = time.perf_counter() - started
    output = done.stdout.decode("utf-8", "replace")
    ok = done.returncode == 0 and entry.is_file()
    if not ok and language == "c":
        notes.extend(_c_failure_hints(output))
    return BuildResult(
        path, language, ok, output, duration, entry if ok else None, tuple(command), tuple(notes)
    )


# -- C ----------------------------------------------------------------------------------------


def _c_sources(path: Path) -> list[Path]:
    return sorted(path.glob("*.c")) or sorted((path / "src").glob("*.c"))


def _c_command(path: Path, entry: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    compiler = env.get("CC") or "clang"
    found = shutil.which(compiler, path=env.get("PATH", os.defpath))
    if found is None:
        raise ToolchainMissing(f"{compiler} not found on PATH: {C_TOOLCHAIN_HINT}")
    if shutil.which("wasm-ld", path=env.get("PATH", os.defpath)) is None:
        raise ToolchainMissing(f"wasm-ld (the WebAssembly linker) not found: {C_TOOLCHAIN_HINT}")
    sources = [str(s.relative_to(path)) for s in _c_sources(path)]
    includes = ["-I."] + (["-Isrc"] if (path / "src").is_dir() else [])
    command = [
        found, *C_FLAGS, *shlex.split(env.get("CFLAGS", "")), *includes, *C_LINK_FLAGS,
        "-o", str(entry.relative_to(path)), *sources,
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


def _as_command(path: Path, entry: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
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
            "(in the rwq repository: make toolchains, or npm ci --prefix sdk/assemblyscript)"
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
        "--lib", AS_LIBRARY, *ASC_FLAGS, *shlex.split(env.get("ASCFLAGS", "")),
        "-o", str(entry.relative_to(path)),
    ]  # fmt: skip
    return command, notes


def _package_version(package: Path) -> str | None:
    try:
        version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None
