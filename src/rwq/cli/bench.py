"""``rwq bench``: the figures of ``docs/performance.md``, as JSON or for people."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

import typer

from rwq.cli.context import JsonFlag, context_of, out, print_json_out
from rwq.units import format_figure


class WebPart(StrEnum):
    """The parts of ``rwq bench web``."""

    api = "api"
    stream = "stream"


bench_app = typer.Typer(help="Measure rwq on this machine.", no_args_is_help=True)


@bench_app.command("queue")
def bench_queue_cmd(
    ctx: typer.Context,
    jobs: Annotated[int, typer.Option("--jobs", "-n", min=100)] = 50_000,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue, process and latency figures (a throwaway server unless --redis-url)."""
    from rwq.bench.queue import run_queue_bench

    result = run_queue_bench(context_of(ctx).settings, jobs=jobs)
    _show(result, as_json)


@bench_app.command("web")
def bench_web_cmd(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option("--requests", "-n", min=10)] = 2000,
    connections: Annotated[
        int, typer.Option("--connections", min=1, help="Live streams read at once.")
    ] = 50,
    panels: Annotated[int, typer.Option("--panels", min=1, help="Plugin panels changing.")] = 20,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, help="Changes a second of each panel.")
    ] = 5.0,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.5, help="Length of the stream's measured window.")
    ] = 10.0,
    only: Annotated[
        WebPart | None, typer.Option("--only", help="Run one part: api or stream.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """HTTP admin API latency (stats and a job lookup) and the live stream (many connections
    while plugin panels change), each against a real server."""
    from rwq.bench.web import run_web_bench
    from rwq.bench.web_stream import run_stream_bench

    settings = context_of(ctx).settings
    result: dict[str, Any] = {}
    if only is not WebPart.stream:
        result |= run_web_bench(settings, requests=requests)
    if only is not WebPart.api:
        result["stream"] = run_stream_bench(
            settings, connections=connections, panels=panels, rate=rate, seconds=seconds
        )
    _show(result, as_json)


@bench_app.command("plugins")
def bench_plugins_cmd(
    ctx: typer.Context,
    scale: Annotated[
        list[int] | None,
        typer.Option(
            "--scale",
            min=0,
            help="Plugins in the scale scenario (repeat for several runs; 0 skips it). "
            "Default: 100 and 200.",
        ),
    ] = None,
    scale_seconds: Annotated[
        float, typer.Option("--scale-seconds", min=1.0, help="Load time of each scale run.")
    ] = 10.0,
    only_scale: Annotated[
        bool, typer.Option("--only-scale", help="Run the scale scenario alone.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Capability checks, event delivery, host API calls and reloads of the plugin core, the
    runtimes, and the scale scenario: many Starlark plugins on job.* under 1,000 job events
    a second."""
    from rwq.bench.plugins import run_plugins_bench

    counts = [n for n in (scale if scale is not None else [100, 200]) if n > 0]
    result = run_plugins_bench(
        context_of(ctx).settings,
        scale_plugins=counts,
        scale_seconds=scale_seconds,
        only_scale=only_scale,
    )
    _show(result, as_json)


@bench_app.command("tui")
def bench_tui_cmd(
    ctx: typer.Context,
    panels: Annotated[int, typer.Option("--panels", min=1, help="Plugin panels on screen.")] = 20,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, help="Events a second for each panel.")
    ] = 30.0,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.5, help="Length of the measured window.")
    ] = 10.0,
    as_json: JsonFlag = False,
) -> None:
    """The TUI in a pseudo-terminal with many panels changing: CPU, render and paint times."""
    from rwq.bench.tui import run_tui_bench

    result = run_tui_bench(context_of(ctx).settings, panels=panels, rate=rate, seconds=seconds)
    _show(result, as_json)


@bench_app.command("toolkit")
def bench_toolkit_cmd(
    lang: Annotated[
        list[str] | None,
        typer.Option(
            "--lang", help="starlark, c or assemblyscript (repeat for several; default: all)."
        ),
    ] = None,
    saves: Annotated[int, typer.Option("--saves", min=1, help="Saves timed per language.")] = 5,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, help="Demo jobs a second while developing.")
    ] = 20.0,
    as_json: JsonFlag = False,
) -> None:
    """A plugin author's loop per language, in a terminal: rwq plugin new to the panel live
    in rwq plugin dev, and each save to the new version on screen (in a temporary home)."""
    from rwq.bench.toolkit import run_toolkit_bench

    result = run_toolkit_bench(lang, saves=saves, rate=rate)
    _show(result, as_json)


def _show(result: Mapping[str, Any], as_json: bool) -> None:
    """A benchmark's figures: JSON when asked, else for people."""
    if as_json:
        print_json_out(result)
    else:
        _print_figures(result)


def _print_figures(figures: Mapping[str, Any], indent: int = 0) -> None:
    """A benchmark's figures for people: one ``name: value`` a line, nested ones indented."""
    for key, value in figures.items():
        if isinstance(value, Mapping):
            out.print(f"{' ' * indent}{key}:")
            _print_figures(value, indent + 2)
        else:
            out.print(f"{' ' * indent}{key}: {format_figure(value)}", soft_wrap=True)
