"""``rwq web`` (the HTTP admin API) and ``rwq token`` (its tokens: create, list, revoke)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rwq.cli.context import JsonFlag, UsageError, context_of, err, out, print_json_out
from rwq.cli.plugin import HostPlugins, PluginsDir, PolicyFile, WatchPlugins
from rwq.plugins.package.paths import with_plugin_dirs
from rwq.printable import marked
from rwq.units import UnitError, parse_duration
from rwq.valkey.embedded import keeping_embedded

__all__ = ["token_app", "web_cmd"]

token_app = typer.Typer(
    help="Tokens of the HTTP admin API (`rwq web`), scoped like plugin grants.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``rwq web`` and ``rwq token`` to the root command."""
    app.command("web")(web_cmd)
    app.add_typer(token_app, name="token")


def web_cmd(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (default: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any).")] = 8080,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate: serve HTTPS.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its PEM key.")] = None,
    plugins: HostPlugins = True,
    policy: PolicyFile = None,
    watch: WatchPlugins = True,
    plugins_dir: PluginsDir = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Print a line per request (on stdout).")
    ] = False,
) -> None:
    """Serve the web dashboard (log in with a token) and the HTTP admin API (under /api/v1;
    schema at /openapi.json)."""
    from rwq.web.server import WebServer, is_loopback

    context = context_of(ctx)
    settings = with_plugin_dirs(context.settings, plugins_dir, "--plugins-dir")
    with keeping_embedded(settings):
        host_of_plugins = None
        if plugins:
            from rwq.host.build import HostOptions, build_host

            options = HostOptions(policy_path=policy, watch=watch)
            host_of_plugins = build_host(settings, context.broker.client, options)
        server = WebServer(
            settings, context.broker, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
            log_level="warning", plugin_host=host_of_plugins, access_log=access_log,
        )  # fmt: skip
        if not is_loopback(host) and not server.tls:
            err.print(
                marked(
                    "WARNING:",
                    "red",
                    f"serving on {host} without TLS: tokens and session cookies cross the "
                    "network in clear text. Use --tls-cert/--tls-key or a TLS proxy on this "
                    "machine.",
                ),
                soft_wrap=True,
            )
        server.run(
            lambda url: err.print(
                f"rwq web: {url}/ (dashboard; API at {url}/api/v1) (Ctrl-C to stop)",
                soft_wrap=True,
            )
        )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name (1-64 of A-Z a-z 0-9 _ -).")],
    permission: Annotated[
        list[str],
        typer.Option(
            "--permission",
            "-p",
            help="A permission of the plugin catalog (docs/permissions.md) or a level; repeat.",
        ),
    ],
    queues: Annotated[
        list[str] | None,
        typer.Option("--queues", "-q", help="Queue globs it is limited to (repeat; default *)."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime: 30d, 12h... (default: never).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from rwq.web.tokens import TokenStore

    expires_in = None
    if expires is not None:
        try:
            expires_in = parse_duration(expires, "--expires")
        except UnitError as exc:
            raise UsageError(str(exc)) from None
    broker = context_of(ctx).broker
    store = TokenStore(broker.client, broker.keys)
    token, secret = store.create(name, permission, queues or ["*"], expires_in)
    if as_json:
        print_json_out({**token.to_dict(), "token": secret})
        return
    out.print(secret, soft_wrap=True)
    err.print(
        f"token {token.name!r}: {', '.join(sorted(token.granted))} on queues "
        f"{', '.join(token.queues)}, expires {_when(token.expires_at)}. It is shown only "
        "now: keep it in a secret store.",
        soft_wrap=True,
    )


@token_app.command("list")
def token_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every token: name, permissions, queues, created, expires, last used (never secrets)."""
    from rwq.web.tokens import TokenStore

    broker = context_of(ctx).broker
    tokens = TokenStore(broker.client, broker.keys).list()
    if as_json:
        print_json_out([t.to_dict() for t in tokens])
        return
    if not tokens:
        out.print("no tokens (create one with `rwq token create`)")
        return
    table = Table(title="rwq web tokens")
    widest = max((len(p) for t in tokens for p in t.permissions), default=0)
    for column in ("name", "permissions", "queues", "created", "expires", "last used"):
        # One permission a line, never cut; a terminal too narrow for them folds.
        width = widest if column == "permissions" else None
        table.add_column(column, overflow="fold", min_width=width)
    for t in tokens:
        table.add_row(
            t.name, "\n".join(t.permissions), "\n".join(t.queues), _when(t.created_at),
            _when(t.expires_at), _when(t.last_used_at),
        )  # fmt: skip
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke a token: its requests and browser sessions are refused from now on."""
    from rwq.web.tokens import TokenStore

    broker = context_of(ctx).broker
    TokenStore(broker.client, broker.keys).revoke(name)
    out.print(f"token {name!r} revoked")
