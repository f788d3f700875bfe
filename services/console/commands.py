"""``tradewatch console``: the compliance console on its own."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.clitools import fail, load_settings
from services.settings import Settings


def login_hint(url: str) -> str:
    return (
        f"console: {url}\n"
        "  Log in as admin with the one-time password printed when the store was made (once); add\n"
        "  others with `tradewatch users add NAME --role analyst --as admin`."
    )


def console(
    host: Annotated[
        str | None, typer.Option(help="address to bind (default TRADEWATCH_CONSOLE_HOST, 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="port (default TRADEWATCH_CONSOLE_PORT, 8470; 0: a free one)")
    ] = None,
) -> None:
    """Serve the compliance console: the inbox, cases, silences, rules, dashboard and JSON API."""
    from services import runtime
    from services.casework.commands import prepare_store
    from services.console.serve import bind, serve, url_of
    from services.server import ServerUnavailable

    settings = load_settings()
    changes: dict[str, object] = {}
    if host is not None:
        changes["console_host"] = host
    if port is not None:
        changes["console_port"] = port
    settings = Settings.model_validate({**settings.model_dump(), **changes}) if changes else settings
    prepare_store(settings)
    try:
        sock = bind(settings.console_host, settings.console_port)
    except OSError as error:
        fail(f"cannot serve the console on {settings.console_host}:{settings.console_port}: {error.strerror}")
    try:
        ctx = runtime.context(settings)
    except ServerUnavailable as error:
        fail(str(error))
    typer.echo(login_hint(url_of(sock)), err=True)
    try:
        asyncio.run(serve(settings, ctx.endpoint, sock))
    finally:
        ctx.endpoint.close()
