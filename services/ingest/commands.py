"""``tradewatch ingest FILE --source NAME``: ingest one file now, with a summary."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from services.clitools import fail, load_settings


def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    source: Annotated[str, typer.Option(help="how to read the file: jsonl")] = "jsonl",
) -> None:
    """Ingest one file now and print a summary (read, published, duplicates, rejected)."""
    from services import server
    from services.ingest.files import ingest_file, source_for
    from services.ingest.publisher import Publisher
    from services.ingest.sources import UnreadableFile

    settings = load_settings()
    try:
        reader = source_for(source)
    except ValueError as error:
        fail(str(error))

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
        fail(str(error), 1)
    typer.echo(json.dumps({"file": str(file), "source": source, **summary}))
