"""``rwq plugin new|build|check``: the plugin author's commands. A new plugin from a template,
its module built, and the plugin run headless against fixtures, its panel compared with a
stored snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.text import Text

from rwq.cli.plugin import PluginCliError, _settings, err, out, plugin_app
from rwq.errors import RwqError
from rwq.printable import marked, print_json
from rwq.units import counted, parse_duration

if TYPE_CHECKING:
    from rwq.host.check import CheckReport
    from rwq.toolkit.abi import AbiReport
    from rwq.toolkit.build import BuildResult
    from rwq.toolkit.snapshot import SnapshotResult

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    """``message`` as one error line on stderr; the exit to raise."""
    err.print(marked("error:", "red", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


# -- new --------------------------------------------------------------------------------------


@plugin_app.command("new")
def new_cmd(
    name: Annotated[str, typer.Argument(help="The plugin's name: 1-64 of a-z, 0-9 and '-'.")],
    lang: Annotated[
        str, typer.Option("--lang", help="starlark, c or assemblyscript.")
    ] = "starlark",
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to create NAME/ (default: here).")
    ] = Path("."),
) -> None:
    """Create a working plugin in DIR/NAME: a commented manifest, the source of a panel,
    a README, fixtures and the snapshot of its panel (exit 2 if DIR/NAME is not empty)."""
    from rwq.toolkit.scaffold import new_plugin

    try:
        made = new_plugin(name, lang, directory)
    except RwqError as exc:
        raise _fail(str(exc)) from None
    out.print(f"created {made.path} ({made.language}, {counted(len(made.files), 'file')})")
    where = str(made.path)
    build = (
        []
        if made.language == "starlark"
        else ([f"npm ci --prefix {where}"] if made.language == "assemblyscript" else [])
        + [f"rwq plugin build {where}"]
    )
    out.print("next:")
    for step in [
        *build,
        f"rwq plugin check {where} --grant observer --events {where}/fixtures/events.jsonl "
        f"--seed {where}/fixtures/seed.jsonl --snapshot {where}/fixtures/panel.snapshot",
    ]:
        out.print(f"  {step}", soft_wrap=True)


# -- build ------------------------------------------------------------------------------------


@plugin_app.command("build")
def build_cmd(
    path: Annotated[Path, typer.Argument(help="A plugin directory.")] = Path("."),
    as_json: JsonFlag = False,
) -> None:
    """Build a plugin's module: C with clang to a wasm32-wasi reactor, AssemblyScript with its
    pinned asc; Starlark needs no build. Exit 1 when the compiler failed (its output is shown)
    or is not installed, 2 when PATH is not a plugin with sources."""
    from rwq.toolkit.build import BuildInputError, ToolchainMissing, build_plugin

    try:
        result = build_plugin(path)
    except ToolchainMissing as exc:
        if as_json:
            print_json({"plugin": str(path), "ok": False, "error": str(exc)}, out.file)
            raise typer.Exit(1) from None
        raise _fail(str(exc), 1) from None
    except (BuildInputError, RwqError) as exc:
        if as_json:
            print_json({"plugin": str(path), "ok": False, "error": str(exc)}, out.file)
            raise typer.Exit(2) from None
        raise _fail(str(exc)) from None
    if as_json:
        print_json(result.to_dict(), out.file)
    else:
        _print_build(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_build(result: BuildResult) -> None:
    if result.output:  # the compiler's own words, as it wrote them
        err.print(result.output.rstrip("\n"), highlight=False, soft_wrap=True)
    for note in result.notes:
        (out if result.ok else err).print(
            marked("note:", "yellow", note), highlight=False, soft_wrap=True
        )
    if result.language == "starlark":
        out.print(f"{result.plugin}: nothing to build (Starlark runs as written)")
    elif result.ok:
        size = result.artifact.stat().st_size if result.artifact else 0
        out.print(
            f"built {result.artifact} ({size:,} bytes) from {result.language} "
            f"in {result.duration:.2f}s"
        )
    else:
        err.print(
            marked("error:", "red", f"the {result.language} build of {result.plugin} failed"),
            highlight=False,
            soft_wrap=True,
        )


# -- check ------------------------------------------------------------------------------------


@plugin_app.command("check")
def check_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A plugin directory or .zip bundle.")],
    grant: Annotated[
        list[str] | None,
        typer.Option("--grant", help="Grant a permission or level (repeat, or comma-separate)."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="A policy file deciding the permissions.")
    ] = None,
    events: Annotated[
        Path | None, typer.Option("--events", help="Events to feed, one JSON object a line.")
    ] = None,
    seed: Annotated[
        Path | None,
        typer.Option(
            "--seed",
            help="Jobs and dead letters to create first, one JSON object a line ({queue, "
            "payload, tenant, priority, state: pending|scheduled|dead, error}).",
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", help="Events per on_event call.")] = 100,
    timeout: Annotated[
        str, typer.Option("--timeout", help="Longest wait for one batch, e.g. 30s.")
    ] = "60s",
    companion: Annotated[
        list[Path] | None,
        typer.Option(
            "--with", help="Load this bundle beside it, with what it asks for (a dependency)."
        ),
    ] = None,
    plugins_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--plugins-dir",
            help="Load every plugin of this directory beside it, as with --with (repeat).",
        ),
    ] = None,
    snapshot: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            help="Compare the panel after the events, drawn as text, with this file; a "
            "difference is printed as a diff and exits 1.",
        ),
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="Write the panel to the --snapshot file instead.")
    ] = False,
    size: Annotated[
        str, typer.Option("--size", help="The panel's size for --snapshot, COLUMNSxROWS.")
    ] = "80x24",
    abi: Annotated[
        bool,
        typer.Option(
            "--abi",
            help="Run the conformance cases of WASM plugin ABI v1 on its compiled module "
            "instead (docs/abi.md); takes --with, --plugins-dir and --json only.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run one plugin headless: load it, feed it events, render, and report; or, with --abi,
    check its compiled module against the WASM plugin ABI case by case.

    Exit 0 when it ran cleanly (and its panel matches --snapshot; with --abi, no case failed),
    1 when it faulted (and was contained), the panel differs or a case failed, 2 for bad input.
    """
    from rwq.host.check import CheckReport, check_plugin, grant_names, read_events
    from rwq.host.render.text import body_size
    from rwq.plugins.ops.seed import read_seed
    from rwq.toolkit.snapshot import DEFAULT_SIZE, parse_size, require_snapshot

    settings = _settings(ctx)
    if abi:
        _abi_check(ctx, path, companion or [], plugins_dir or [], as_json)
    panel = DEFAULT_SIZE
    try:
        if update and snapshot is None:
            raise PluginCliError("--update rewrites a snapshot: give the file with --snapshot")
        if snapshot is not None:
            panel = parse_size(size)
            require_snapshot(snapshot, update=update)
        companions = [*(companion or []), *_bundles_in(plugins_dir or [], path)]
        fed = read_events(events) if events is not None else []
        planted = read_seed(seed) if seed is not None else []
        report = check_plugin(
            settings,
            path,
            grants=grant_names(grant or []),
            policy=policy,
            events=fed,
            batch_size=batch,
            timeout=parse_duration(timeout, "--timeout"),
            companions=companions,
            seed=planted,
            **({"render_size": body_size(*panel)} if snapshot is not None else {}),
        )
    except RwqError as exc:
        report = CheckReport("invalid", errors=[str(exc)])
    compared = None
    if snapshot is not None and report.status != "invalid":
        try:
            compared = _compare(report, snapshot, panel, update)
        except RwqError as exc:
            report.status = "invalid"
            report.errors.append(str(exc))
    if as_json:
        data = report.to_dict()
        if snapshot is not None:
            data["snapshot"] = compared.to_dict() if compared else None
        print_json(data, out.file)
    else:
        _print_check(report)
        if compared is not None:
            _print_snapshot(compared)
    code = report.exit_code
    if code == 0 and compared is not None and not compared.ok:
        code = 1
    raise typer.Exit(code)


ABI_FLAGS = {"companion", "plugins_dir", "as_json", "abi", "path"}
"""The parameters of ``rwq plugin check`` that --abi takes."""


def _abi_check(
    ctx: typer.Context, path: Path, companions: list[Path], directories: list[Path], as_json: bool
) -> None:
    """``rwq plugin check PATH --abi``: print the cases' verdicts and exit 0 (none failed), 1
    (one did) or 2 (bad input)."""
    from rwq.toolkit.abi import AbiInputError, run_conformance

    given = [
        param
        for param in ctx.command.params
        if param.name not in ABI_FLAGS and _given(ctx, param.name or "")
    ]
    try:
        if given:
            flag = given[0].opts[0]
            raise AbiInputError(
                f"--abi runs its own cases: {flag} does not combine with it "
                "(--abi takes --with, --plugins-dir and --json)"
            )
        companions = [*companions, *_bundles_in(directories, path)]
        report = run_conformance(_settings(ctx), path, companions=companions)
    except (AbiInputError, PluginCliError) as exc:
        if as_json:
            print_json({"plugin": {"path": str(path)}, "ok": False, "error": str(exc)}, out.file)
            raise typer.Exit(2) from None
        raise _fail(str(exc)) from None
    if as_json:
        print_json(report.to_dict(), out.file)
    else:
        _print_abi(report)
    raise typer.Exit(report.exit_code)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the parameter ``name`` was given (on the command line or otherwise), not left
    at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


_VERDICT_STYLES = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def _print_abi(report: AbiReport) -> None:
    from rich.table import Table

    from rwq.printable import plain_text

    plugin = report.plugin
    out.print(
        f"{plugin['name']} {plugin['version']}: WASM plugin ABI v1 conformance ({plugin['path']})"
    )
    table = Table(box=box.SIMPLE_HEAD, expand=False)
    table.add_column("case", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for case in report.cases:
        table.add_row(case.name, plain_text(case.verdict, _VERDICT_STYLES[case.verdict]),
                      case.reason)  # fmt: skip
    out.print(table)
    counts = report.counts()
    summary = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped"
    if report.ok:
        out.print(marked("abi:", "green", summary), soft_wrap=True)
    else:
        err.print(marked("abi:", "red", summary), soft_wrap=True)


def _compare(
    report: CheckReport, snapshot: Path, panel: tuple[int, int], update: bool
) -> SnapshotResult:
    from rwq.host.render.text import panel_text
    from rwq.plugins.contract.ui import ElementError
    from rwq.toolkit.snapshot import compare_snapshot, not_rendered

    if report.render is None:
        return not_rendered(snapshot, panel, "the plugin rendered nothing to compare")
    if update and report.status != "ok":
        return not_rendered(snapshot, panel, f"not written: the check {report.status}")
    try:
        drawn = panel_text(report.plugin["title"], report.render, *panel)
    except ElementError as exc:
        return not_rendered(snapshot, panel, f"the render is not drawn: {exc}")
    return compare_snapshot(snapshot, drawn, panel, update=update)


def _print_snapshot(result: SnapshotResult) -> None:
    where = f"{result.path} ({result.size[0]}x{result.size[1]})"
    if result.status == "match":
        out.print(marked("snapshot:", "green", f"the panel matches {where}"), soft_wrap=True)
    elif result.status == "written":
        out.print(marked("snapshot:", "green", f"wrote {where}"), soft_wrap=True)
        if result.diff:
            out.print(result.diff.rstrip("\n"), highlight=False, soft_wrap=True)
    elif result.status == "mismatch":
        out.print(result.diff.rstrip("\n"), highlight=False, soft_wrap=True)
        err.print(
            marked(
                "snapshot:",
                "red",
                f"the panel differs from {result.path} (above: - stored, + rendered); "
                "rerun with --update if the change is intended",
            ),
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print(marked("snapshot:", "red", f"{where}: {result.reason}"), soft_wrap=True)


def _bundles_in(directories: list[Path], tested: Path) -> list[Path]:
    """The plugin directories and zip bundles of ``directories`` (``--plugins-dir``), without
    the plugin under test."""
    found: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            raise PluginCliError(f"--plugins-dir: {directory} is not a directory")
        for entry in sorted(directory.iterdir()):
            if entry.resolve() == tested.resolve() or entry.name.startswith("."):
                continue
            if entry.suffix == ".zip" or (entry / "manifest.yaml").is_file():
                found.append(entry)
    return found


PANEL_WIDTH = 80
"""Cells wide the check report draws the last render (a two-column grid's panel)."""


def _panel(name: str, elements: list[Any]) -> Any:
    """The last render drawn as the TUI draws it, in a border titled with the plugin."""
    from rich.panel import Panel

    from rwq.host.render.elements import build_panel
    from rwq.plugins.contract.ui import ElementError, validate_elements

    try:
        view = build_panel(validate_elements(elements), PANEL_WIDTH - 4)
    except ElementError as exc:
        return marked("render:", "red", f"not drawn: {exc}")
    return Panel(view.renderable, title=f"last render of {name}", title_align="left",
                 width=PANEL_WIDTH, box=box.ROUNDED)  # fmt: skip


def _print_check(report: Any) -> None:
    plugin = report.plugin
    if plugin:
        out.print(f"{plugin['name']} {plugin['version']} ({plugin['runtime']}): {report.status}")
        out.print(f"  loaded in {report.load_ms:.1f} ms; state {report.state or '-'}")
        for hook, stats in sorted(report.hooks.items()):
            s = stats.to_dict()
            out.print(
                f"  {hook}: {s['calls']} calls, {s['errors']} failed, "
                f"mean {s['mean_ms']:.2f} ms, max {s['max_ms']:.2f} ms"
            )
        if report.events:
            counts = ", ".join(f"{n} {what}" for what, n in report.events.items())
            out.print(f"  events: {counts}", highlight=False)
        res = report.resources
        out.print(
            f"  peak memory {res.get('peak_memory_bytes', 0)} B, CPU {res.get('cpu_ms', 0)} ms"
        )
        for what, names in report.permissions.items():
            if names:
                out.print(f"  {what}: {', '.join(names)}")
        denied = [a for a in report.audit if not a.get("allowed", True)]
        out.print(f"  audit: {counted(len(report.audit), 'record')}, {len(denied)} denied")
        if report.render is not None:
            out.print(_panel(plugin["name"], report.render))
    else:
        out.print(f"check: {report.status}")
    for fault in report.faults:
        out.print(
            Text("  ") + marked("fault", "red", f"{fault.kind} {fault.hook}: {fault.reason}"),
            soft_wrap=True,
        )
    for error in report.errors:
        err.print(marked("error:", "red", error), highlight=False, soft_wrap=True)
