"""The ``tradewatch`` command: run the pipeline, its stages, and the tools around them."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from services.logging import configure as configure_logging
from services.redact import redact
from services.settings import Settings
from services.yamlfile import ConfigError

app = typer.Typer(
    name="tradewatch",
    help="Alerts on machinery and sanctioned goods reported crossing into North Korea.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Check and test rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


class StageName(StrEnum):
    ingest = "ingest"
    rules = "rules"
    notify = "notify"


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        _fail("settings are not valid:\n" + "\n".join(lines))
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _fail(message: str, code: int = 2) -> Any:
    typer.echo(f"tradewatch: {redact(message)}", err=True)
    raise typer.Exit(code)


def _stages(names: Sequence[StageName], ctx: Any, feed: Sequence[Path]) -> list[Any]:
    from services.ingest.stage import IngestStage
    from services.notify.stage import NotifyStage
    from services.rules.stage import RulesStage

    made: list[Any] = []
    for name in names:
        if name is StageName.ingest:
            made.append(IngestStage(ctx, feed))
        elif name is StageName.rules:
            made.append(RulesStage(ctx))
        else:
            made.append(NotifyStage(ctx))
    return made


def _run(names: Sequence[StageName], burst: bool, feed: Sequence[Path] = ()) -> None:
    from services import runtime
    from services.server import ServerUnavailable

    settings = _settings()
    try:
        ctx = runtime.context(settings)
    except ServerUnavailable as error:
        _fail(str(error))
    try:
        stages = _stages(names, ctx, feed)
        faststream_app = runtime.build(settings, stages, ctx, burst=burst)
        asyncio.run(faststream_app.run())
    except ConfigError as error:
        _fail(f"refusing to start, the configuration has errors:\n{error}")
    finally:
        ctx.endpoint.close()


@app.command()
def up(
    feed: Annotated[list[Path], typer.Option(help="files or folders to ingest at start")] = [],  # noqa: B006
    burst: Annotated[bool, typer.Option(help="drain what is waiting, then exit")] = False,
) -> None:
    """Run all three stages in one process (and the embedded server, when no URL is set)."""
    _run(list(StageName), burst, feed)


@app.command()
def worker(
    stage: Annotated[StageName, typer.Argument(help="the stage to run")],
    burst: Annotated[bool, typer.Option(help="drain what is waiting, then exit")] = False,
) -> None:
    """Run one stage; start as many replicas as you like, on any machine that reaches the server."""
    _run([stage], burst)


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option(help="how to read the file: jsonl")] = "jsonl",
) -> None:
    """Ingest one file now and print a summary (read, published, duplicates, rejected)."""
    from services import server
    from services.ingest.files import ingest_file, source_for
    from services.ingest.publisher import Publisher
    from services.ingest.sources import UnreadableFile

    settings = _settings()
    try:
        reader = source_for(source)
    except ValueError as error:
        _fail(str(error))

    async def go() -> dict[str, int]:
        endpoint = server.resolve(settings)
        redis = server.client(endpoint)
        try:
            publisher = Publisher(redis, settings.streams, settings.dedup_retention)
            tally = await ingest_file(file, reader, publisher)
            return tally.as_dict()
        finally:
            await redis.aclose()
            endpoint.close()

    try:
        summary = asyncio.run(go())
    except UnreadableFile as error:
        _fail(str(error), 1)
    typer.echo(json.dumps({"file": str(file), "source": source, **summary}))


@rules_app.command("check")
def rules_check(
    files: Annotated[
        list[Path] | None, typer.Argument(help="rule files; default: the configured ones")
    ] = None,
) -> None:
    """Validate rule files, the catalog and the rates table; list every problem, exit 1 on any."""
    from services.rules.loader import load_ruleset

    settings = _settings()
    paths = files or settings.rules_files
    try:
        ruleset = load_ruleset(paths, settings.catalog_file, settings.rates_file)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        typer.echo(f"{len(error.problems)} problem(s)", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {len(ruleset.rules)} rules, rule set version {ruleset.version}")


@app.command("server")
def run_server() -> None:
    """Run the embedded Valkey server in the foreground, for several tradewatch processes to share."""
    import signal
    import time

    from services import server

    settings = _settings()
    if settings.redis_url is not None:
        _fail("TRADEWATCH_REDIS_URL is set: the configured server is used, there is nothing to start")
    endpoint = server.resolve(settings)
    if endpoint.owned is None:
        _fail(f"an embedded server already runs for {settings.data_dir}: {endpoint.url}")
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
