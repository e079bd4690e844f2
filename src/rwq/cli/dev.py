"""``rwq plugin dev PATH``: the TUI with one plugin's panel in front, fed by the demo workload
(or a live queue), the plugin rebuilt on save, hot-reloaded, and granted what it asks for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rwq.cli.plugin import PluginCliError, _settings, out, plugin_app
from rwq.cli.toolkit import _fail
from rwq.errors import RwqError

if TYPE_CHECKING:
    from rwq.config import Settings
    from rwq.toolkit.dev import DevBuilder


@plugin_app.command("dev")
def dev_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The plugin directory.")] = Path("."),
    with_installed: Annotated[
        bool,
        typer.Option("--all", "--with-installed", help="Host your other plugins beside it."),
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis-url", help="A live queue's server; no demo workload is run."),
    ] = None,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, max=10_000, help="Demo jobs per second.")
    ] = 20.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Demo worker processes.")] = 2,
) -> None:
    """Develop a plugin live: its panel in front of the TUI beside its log, faults, builds,
    reloads and hook timings; sources rebuilt on save (C, AssemblyScript) and hot-reloaded;
    what its manifest asks for granted at each version. Exit 2 when PATH is not a plugin, 1
    when its compiler is not installed."""
    from rwq.plugins.package.paths import with_plugin_dirs
    from rwq.tui.dev import DevSession
    from rwq.valkey.embedded import keeping_embedded

    settings = _settings(ctx)
    if redis_url is not None:
        settings = settings.replace(redis_url=redis_url)
    plugin = path.expanduser().resolve()
    name, builder = _prepare(plugin, settings, with_installed)
    if with_installed:
        settings = with_plugin_dirs(settings, [plugin], "PATH")
    else:  # the plugin alone: not the user's plugin_dirs, not the installed ones
        settings = settings.replace(plugin_dirs=str(plugin))
    live = settings.redis_url is not None
    feed = "the live queues" if live else f"the demo workload ({rate:g} jobs/s)"
    session = DevSession(name, plugin, builder, feed)
    out.print(f"{name}: starting the plugin host and {feed}; the screen opens in a few seconds")
    if builder is not None:
        builder.start()
    try:
        with keeping_embedded(settings):
            if live:
                _dashboard(session, with_installed)(settings, None, None)
            else:
                from rwq.demo.run import run_demo

                run_demo(
                    settings, duration=None, live=True, workers=workers, rate=rate,
                    dashboard=_dashboard(session, with_installed),
                )  # fmt: skip
    finally:
        if builder is not None:
            builder.stop()
            if builder.builds and builder.last is not None and builder.last.ok:
                out.print(
                    f"{plugin.name}: the module is a development build (unoptimized); "
                    f"rwq plugin build {path} makes the one to pack",
                    soft_wrap=True,
                )


def _prepare(
    plugin: Path, settings: Settings, with_installed: bool
) -> tuple[str, DevBuilder | None]:
    """The plugin's name and its build loop (None for Starlark), after a first build; a bad
    PATH or manifest, or a missing compiler, exits with one line."""
    from rwq.plugins.package.manifest import find_manifest, load_manifest
    from rwq.plugins.package.paths import PluginPaths
    from rwq.toolkit.build import BuildInputError, ToolchainMissing
    from rwq.toolkit.dev import DevBuilder

    try:
        if not plugin.is_dir() or find_manifest(plugin) is None:
            what = "does not exist" if not plugin.exists() else "is not a plugin directory"
            raise PluginCliError(f"{plugin} {what}: give a directory with a manifest.yaml")
        manifest = load_manifest(find_manifest(plugin))  # type: ignore[arg-type]
        installed = PluginPaths(settings).installed / manifest.name
        if with_installed and installed.exists() and installed.resolve() != plugin:
            raise PluginCliError(
                f"{manifest.name} is installed too ({installed}): --all would host it twice; "
                f"rwq plugin remove {manifest.name}, or leave out --all"
            )
        builder = DevBuilder(plugin)
        if not builder.compiled:
            return manifest.name, None
        out.print(f"{manifest.name}: building ({builder.language}, a development build)")
        builder.build("start", strict=True)  # a compiler's error is shown in the TUI
        return manifest.name, builder
    except ToolchainMissing as exc:
        raise _fail(str(exc), 1) from None
    except (BuildInputError, RwqError) as exc:
        raise _fail(str(exc)) from None


def _dashboard(session: Any, with_installed: bool) -> Any:
    """The TUI for ``run_demo`` (``settings, client, duration``) with the dev screen."""
    from rwq.tui.launch import launch

    def dashboard(target: Settings, client: Any, seconds: float | None) -> None:
        launch(
            target, client=client, quit_after=seconds, dev=session,
            with_installed=with_installed,
        )  # fmt: skip

    return dashboard
