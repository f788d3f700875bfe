"""``tradewatch sanctions ...``: load lists into Redis, show them, screen one name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import redis.asyncio as aredis
import typer

from services.clitools import fail, load_settings
from services.settings import Settings

app = typer.Typer(help="Sanctions lists: load them, list them, screen a name.", no_args_is_help=True)

T = TypeVar("T")


def _with_redis(settings: Settings, work: Callable[[aredis.Redis], Awaitable[T]]) -> T:
    from services import server

    async def go() -> T:
        endpoint = server.resolve(settings)
        redis = server.client(endpoint)
        try:
            return await work(redis)
        finally:
            await redis.aclose()
            endpoint.close()

    try:
        return asyncio.run(go())
    except server.ServerUnavailable as error:
        fail(str(error))


@app.command("load")
def load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="un-xml, ofac-sdn-xml, eu-xml, uk-xml, opensanctions-csv or ftm-json; default: from the content",
        ),
    ] = None,
    list_name: Annotated[
        str | None,
        typer.Option(
            "--list",
            help="name of the list; default un-sc, ofac-sdn, eu-fsf, uk-sanctions or opensanctions by format",
        ),
    ] = None,
) -> None:
    """Read a list file and make it the list in force, at once (readers never see half a list).

    Warns (on stderr) when the list is older than TRADEWATCH_SANCTIONS_MAX_AGE."""
    from services.sanctions.lists import (
        DEFAULT_LIST_NAMES,
        ListFileError,
        ListFormat,
        detect_format,
        list_age,
        read_list,
        too_old,
    )
    from services.sanctions.store import SanctionsStore

    settings = load_settings()
    try:
        fmt = ListFormat(format_) if format_ else detect_format(file)
    except ValueError as error:
        fail(
            f"refused {file}: {error}"
            if isinstance(error, ListFileError)
            else f"unknown format {format_!r}: use " + ", ".join(f.value for f in ListFormat)
        )
    name = list_name or DEFAULT_LIST_NAMES[fmt]
    if not name.replace("-", "").replace("_", "").isalnum():
        fail(f"list name {name!r}: use letters, digits, - and _")
    try:
        parsed = read_list(file, name, fmt)
    except ListFileError as error:
        fail(f"refused {file}: {error}", 1)

    loaded = _with_redis(
        settings, lambda redis: SanctionsStore(redis, settings).save(name, fmt, str(file), parsed)
    )
    meta = loaded.meta
    warning = too_old(meta, settings.sanctions_max_age)
    typer.echo(
        json.dumps(
            {
                "list": meta.list,
                "version": meta.version,
                "date": meta.date,
                "entries": meta.entries,
                "changed": loaded.changed,
                "replaced": loaded.replaced,
                "age_days": list_age(meta).days,
                "too_old": warning is not None,
            },
            ensure_ascii=False,
        )
    )
    if warning is not None:
        typer.echo(f"tradewatch: warning: {warning}", err=True)


@app.command("lists")
def lists() -> None:
    """Show the lists in force: name, date, version, number of entries, source file."""
    from services.sanctions.store import SanctionsStore

    settings = load_settings()

    metas = _with_redis(settings, lambda redis: SanctionsStore(redis, settings).lists())
    if not metas:
        typer.echo("no sanctions lists loaded", err=True)
    for meta in metas:
        typer.echo(json.dumps(meta.model_dump(mode="json"), ensure_ascii=False))


@app.command("screen")
def screen(
    name: Annotated[str, typer.Argument(help="a company or person name, in any script")],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of matches")] = False,
    min_score: Annotated[
        float | None, typer.Option(help="lowest score shown; default TRADEWATCH_SANCTIONS_MIN_SCORE")
    ] = None,
    lists_: Annotated[
        list[str] | None, typer.Option("--lists", help="only these lists or tags (un-dprk); repeatable")
    ] = None,
) -> None:
    """Screen one name against the lists in force: listed entry, reference, alias, score."""
    from services.sanctions.store import ScreeningCache
    from services.sanctions.vessels import imo_digits

    settings = load_settings()

    index = _with_redis(settings, lambda redis: ScreeningCache(redis, settings).current())
    if not len(index):
        fail("no sanctions lists loaded: run `tradewatch sanctions load FILE` first", 1)
    threshold = settings.sanctions_min_score if min_score is None else min_score
    found = index.search(name, threshold, lists_ or None).matches
    if not found and (digits := imo_digits(name)):  # an IMO number: listed vessels
        search = index.search_vessel(None, digits, threshold, lists_ or None)
        found = search.matches
        for note in search.notes:
            typer.echo(note, err=True)
    if as_json:
        typer.echo(json.dumps([m.as_dict() for m in found], ensure_ascii=False, indent=2))
        return
    if not found:
        typer.echo(f"no match for {name!r} at score >= {threshold:g}")
        return
    for m in found:
        e = m.entry
        typer.echo(
            f"{m.score:.3f}  {e.reference}  {e.name}  (alias {m.matched_alias!r}"
            + (f", {m.note}" if m.note else "")
            + f"; {e.list_type or '-'}, listed {e.listed_on or '-'})"
        )
