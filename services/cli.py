"""The ``tradewatch`` command: run the pipeline and its stages; each stage adds its own tools.

Subcommands live beside what they drive (``services/<stage>/commands.py``); this module only
runs stages and wires the rest in.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from services.casework import commands as casework_commands
from services.clitools import fail, load_settings
from services.console import commands as console_commands
from services.history import commands as history_commands
from services.ingest import commands as ingest_commands
from services.notify import commands as notify_commands
from services.ops import commands as ops_commands
from services.rules import commands as rules_commands
from services.sanctions import commands as sanctions_commands
from services.yamlfile import ConfigError

app = typer.Typer(
    name="tradewatch",
    help="Alerts on machinery and sanctioned goods reported crossing into North Korea.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(rules_commands.app, name="rules")
app.add_typer(sanctions_commands.app, name="sanctions")
app.command("ingest")(ingest_commands.ingest)
notify_commands.register(app)
app.command("status")(ops_commands.status)
app.add_typer(ops_commands.dlq_app, name="dlq")
casework_commands.register(app)
app.command("console")(console_commands.console)
rules_commands.app.command("backtest")(history_commands.backtest)
sanctions_commands.app.command("lookback")(history_commands.sanctions_lookback)
app.command("flows")(history_commands.flows)
app.add_typer(history_commands.archive_app, name="archive")


class StageName(StrEnum):
    ingest = "ingest"
    rules = "rules"
    notify = "notify"
    records = "records"
    archive = "archive"


def _stages(names: Sequence[StageName], ctx: Any, feed: Sequence[Path]) -> list[Any]:
    from services.archive.stage import ArchiveStage
    from services.ingest.stage import IngestStage
    from services.notify.stage import NotifyStage
    from services.records.stage import RecordsStage
    from services.rules.stage import RulesStage

    made: list[Any] = []
    for name in names:
        if name is StageName.ingest:
            made.append(IngestStage(ctx, feed))
        elif name is StageName.rules:
            made.append(RulesStage(ctx))
        elif name is StageName.records:
            made.append(RecordsStage(ctx))
        elif name is StageName.archive:
            made.append(ArchiveStage(ctx))
        else:
            made.append(NotifyStage(ctx))
    return made


def _run(names: Sequence[StageName], burst: bool, feed: Sequence[Path] = (), console: bool = False) -> None:
    from services import runtime
    from services.server import ServerUnavailable

    settings = load_settings()
    if StageName.records in names or StageName.archive in names:
        casework_commands.prepare_store(settings)
    try:
        ctx = runtime.context(settings)
    except ServerUnavailable as error:
        fail(str(error))
    served = None
    if console:
        from services.console.commands import login_hint
        from services.console.serve import in_background

        try:
            served = in_background(settings, ctx.endpoint)
            typer.echo(login_hint(served.url), err=True)
        except OSError as error:
            typer.echo(
                f"tradewatch: the console is not served ({settings.console_host}:{settings.console_port}: "
                f"{error.strerror}); the stages run without it",
                err=True,
            )
    try:
        runtime.run(settings, lambda c: _stages(names, c, feed), ctx, burst=burst)
    except ConfigError as error:
        fail(f"refusing to start, the configuration has errors:\n{error}")
    finally:
        if served is not None:
            served.stop()
        ctx.endpoint.close()


@app.command()
def up(
    feed: Annotated[list[Path], typer.Option(help="files or folders to ingest at start")] = [],  # noqa: B006
    burst: Annotated[bool, typer.Option(help="drain what is waiting, then exit")] = False,
    console: Annotated[bool, typer.Option(help="also serve the console (never with --burst)")] = True,
) -> None:
    """Run every stage (ingest, rules, notify, records, archive) and the console in one process (and the
    embedded server, when no URL is set)."""
    _run(list(StageName), burst, feed, console=console and not burst)


@app.command()
def worker(
    stage: Annotated[StageName, typer.Argument(help="the stage to run")],
    burst: Annotated[bool, typer.Option(help="drain what is waiting, then exit")] = False,
) -> None:
    """Run one stage; start as many replicas as you like, on any machine that reaches the server."""
    _run([stage], burst)


@app.command("server")
def run_server() -> None:
    """Run the embedded Valkey server in the foreground, for several tradewatch processes to share."""
    import signal
    import time

    from services import server

    settings = load_settings()
    if settings.redis_url is not None:
        fail("TRADEWATCH_REDIS_URL is set: the configured server is used, there is nothing to start")
    endpoint = server.resolve(settings)
    if endpoint.owned is None:
        fail(f"an embedded server already runs for {settings.data_dir}: {endpoint.url}")
    typer.echo(f"serving {endpoint.url} (data in {settings.data_dir / 'valkey'}); Ctrl-C stops it")
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        while not stop:
            time.sleep(0.2)
    finally:
        endpoint.close()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
