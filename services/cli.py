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


def _run(names: Sequence[StageName], burst: bool, feed: Sequence[Path] = ()) -> None:
    from services import runtime
    from services.server import ServerUnavailable

    settings = load_settings()
    if StageName.records in names or StageName.archive in names:
        _prepare_store(settings)
    try:
        ctx = runtime.context(settings)
    except ServerUnavailable as error:
        fail(str(error))
    try:
        runtime.run(settings, lambda c: _stages(names, c, feed), ctx, burst=burst)
    except ConfigError as error:
        fail(f"refusing to start, the configuration has errors:\n{error}")
    finally:
        ctx.endpoint.close()


def _prepare_store(settings: Any) -> None:
    """The embedded default's SQLite file is migrated and gets its first admin (its one-time
    password shown here, once) before the stages start. A failure is only said: the records
    stage waits for its database, the other stages go on."""
    import asyncio

    from services.store import Store
    from services.store.engine import describe

    if not settings.embedded_store:
        return

    async def go() -> tuple[str, str] | None:
        store = Store.from_settings(settings)
        try:
            return await casework_commands.prepare(store, settings)
        finally:
            await store.dispose()

    try:
        casework_commands.announce_admin(asyncio.run(go()), settings)
    except Exception as error:
        from services.logging import get_logger

        get_logger(component="store").error(
            "store of record not ready: the records stage waits for it", error=describe(error)
        )


@app.command()
def up(
    feed: Annotated[list[Path], typer.Option(help="files or folders to ingest at start")] = [],  # noqa: B006
    burst: Annotated[bool, typer.Option(help="drain what is waiting, then exit")] = False,
) -> None:
    """Run every stage (ingest, rules, notify, records, archive) in one process (and the embedded server, when no URL is set)."""
    _run(list(StageName), burst, feed)


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
