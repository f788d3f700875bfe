"""``tradewatch ingest FILE --source NAME``: ingest one file now, with a progress bar and a summary."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from services.clitools import fail, load_settings


def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[
        str,
        typer.Option(
            help="how to read the file: jsonl, comtrade, china-customs, article, or a table in config/sources.yaml"
        ),
    ] = "jsonl",
    progress: Annotated[
        bool, typer.Option(help="show a progress bar (default: when stderr is a terminal)")
    ] = sys.stderr.isatty(),
) -> None:
    """Ingest one file now; prints a summary (read, published, duplicates, rejected) as JSON."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from services import server
    from services.ingest.files import ingest_file
    from services.ingest.publisher import Publisher, Tally
    from services.ingest.registry import Sources
    from services.ingest.sources import UnreadableFile
    from services.yamlfile import ConfigError

    settings = load_settings()
    try:
        reader = Sources.from_settings(settings).get(source)
    except ConfigError as error:
        fail(f"the configuration has errors:\n{error}")
    except ValueError as error:
        fail(str(error))

    async def go(bar: Any) -> dict[str, int]:
        endpoint = server.resolve(settings)
        redis = server.client(endpoint)
        try:
            publisher = Publisher(redis, settings.streams, settings.dedup_retention)

            def step(tally: Tally, position: int) -> None:
                if bar is not None:
                    bar[0].update(bar[1], completed=position, description=_line(tally))

            tally = await ingest_file(file, reader, publisher, step)
            return tally.as_dict()
        finally:
            await redis.aclose()
            endpoint.close()

    try:
        if progress:
            columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
            with Progress(*columns, console=Console(stderr=True), transient=True) as bars:
                task = bars.add_task("starting", total=file.stat().st_size)
                summary = asyncio.run(go((bars, task)))
        else:
            summary = asyncio.run(go(None))
    except UnreadableFile as error:
        fail(str(error), 1)
    typer.echo(json.dumps({"file": str(file), "source": source, **summary}))


def _line(tally: Any) -> str:
    return (
        f"read {tally.read}  published {tally.published}  "
        f"duplicates {tally.duplicates}  rejected {tally.rejected}"
    )
