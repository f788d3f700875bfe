"""``tradewatch rules backtest``, ``tradewatch flows``, ``tradewatch archive ...``,
``tradewatch sanctions lookback``: the report archive from the command line.

Thin: each parses its arguments, calls the function the console would call
(:mod:`services.history.backtest`, :mod:`services.history.flows`, :mod:`services.history.lookback`,
:mod:`services.store.archive`) and prints the result, as JSON with ``--json``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.clitools import fail, load_settings

if TYPE_CHECKING:
    from services.store import Store

archive_app = typer.Typer(
    help="The report archive: every report, for backtests, lookbacks and flows.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON")]
Since = Annotated[
    str | None, typer.Option("--since", help="from this date (YYYY-MM-DD) or time (ISO 8601), by event time")
]
Until = Annotated[str | None, typer.Option("--until", help="before this date or time, by event time")]


def when(text: str | None, option: str) -> datetime | None:
    """A date (midnight UTC) or an ISO 8601 time (UTC when it has no zone)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} {text!r}: write a date (2026-03-01) or a time (2026-03-01T12:00:00Z)", code=1)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _store_run(work: Any) -> Any:
    from services.casework import commands as casework

    return casework.run(load_settings(), work)


def backtest(
    rules: Annotated[
        list[Path] | None,
        typer.Option(
            "--rules", help="the proposed rule file (repeat for several); default: the configured ones"
        ),
    ] = None,
    since: Since = None,
    until: Until = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="processes evaluating reports")] = 2,
    screen: Annotated[
        bool,
        typer.Option(
            "--screen/--no-screen",
            help="screen parties against the sanctions lists in force (in Redis) for party: conditions",
        ),
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Replay archived reports through the live rule set and a proposed one: what would change."""
    from services.history.backtest import RuleFiles, render
    from services.history.backtest import backtest as run_backtest
    from services.yamlfile import ConfigError

    settings = load_settings()
    live = RuleFiles(
        tuple(settings.rules_files),
        settings.catalog_file,
        settings.rates_file,
        tuple(settings.exceptions_files),
    )
    proposed = RuleFiles(tuple(rules), live.catalog, live.rates, live.exceptions) if rules else live
    start, end = when(since, "--since"), when(until, "--until")
    screening = _screening(settings) if screen else None

    async def go(store: Store) -> Any:
        return await run_backtest(
            store, live, proposed, start, end, workers, horizon=settings.backfill_horizon, screening=screening
        )

    try:
        result = _store_run(go)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        fail(f"{len(error.problems)} problem(s) in the rule files", code=2)
    typer.echo(json.dumps(result.as_dict(), ensure_ascii=False) if as_json else render(result))


def _screening(settings: Any) -> Any:
    """The sanctions lists in force with the reviewed exceptions, as the rules stage screens with
    them; None (said on stderr) where no server answers."""
    import asyncio

    from services import server
    from services.sanctions.store import ScreeningCache

    async def go() -> Any:
        endpoint = server.resolve(settings)
        redis = server.client(endpoint)
        try:
            return await ScreeningCache(redis, settings, recheck=0).current()
        finally:
            await redis.aclose()
            endpoint.close()

    try:
        return asyncio.run(go())
    except server.ServerUnavailable as error:
        typer.echo(f"tradewatch: party conditions not screened: {error}", err=True)
        return None


def flows(
    since: Since = None,
    until: Until = None,
    factor: Annotated[
        float, typer.Option(help="a month above this many times its trailing mean is marked")
    ] = 2.0,
    min_reports: Annotated[
        int, typer.Option("--min-reports", help="... and has at least this many reports")
    ] = 3,
    as_json: JsonFlag = False,
) -> None:
    """Monthly value and count of archived reports per HS chapter and crossing; surges marked."""
    from services.history.flows import flows as monthly
    from services.history.flows import render
    from services.money import load_rates

    settings = load_settings()
    rates = load_rates(settings.rates_file)
    start, end = when(since, "--since"), when(until, "--until")

    async def go(store: Store) -> Any:
        return await monthly(store, rates, start, end, factor=factor, min_reports=min_reports)

    rows = _store_run(go)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], ensure_ascii=False))
    else:
        typer.echo(render(rows, rates.base))


@archive_app.command("purge")
def purge() -> None:
    """Remove archived reports received longer ago than TRADEWATCH_ARCHIVE_RETENTION."""
    from datetime import timedelta

    from services.store import archive

    settings = load_settings()
    if settings.archive_retention <= 0:
        fail("TRADEWATCH_ARCHIVE_RETENTION is 0: archived reports are kept for ever", code=1)
    before = datetime.now(UTC) - timedelta(seconds=settings.archive_retention)

    async def go(store: Store) -> int:
        async with store.writing() as session:
            return await archive.purge(session, before)

    removed = _store_run(go)
    typer.echo(f"removed {removed} archived report(s) received before {before.isoformat(timespec='seconds')}")


@archive_app.command("list")
def list_reports(
    since: Since = None,
    until: Until = None,
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    crossing: Annotated[str | None, typer.Option(help="only this crossing (as written)")] = None,
    chapter: Annotated[
        str | None, typer.Option(help="only reports with an item in this HS chapter (84)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Archived reports in event-time order."""
    from services.store import archive

    where = archive.Filter(when(since, "--since"), when(until, "--until"), source, crossing, chapter)

    async def go(store: Store) -> tuple[int, list[dict[str, Any]]]:
        async with store.reading() as session:
            total = await archive.count(session, where)
            rows = await archive.query(session, where, limit)
        return total, [
            {
                "report_id": r.report_id,
                "source": r.source,
                "event_at": r.event_at.isoformat(),
                "received_at": r.received_at.isoformat(),
                "crossing": r.crossing,
                "chapters": r.chapters.strip("|").split("|") if r.chapters else [],
            }
            for r in rows
        ]

    total, rows = _store_run(go)
    if as_json:
        typer.echo(json.dumps({"total": total, "reports": rows}, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(
            f"{r['event_at'][:10]}  {r['report_id']}  {r['source']}  {r['crossing'] or '-'}  "
            f"HS {','.join(r['chapters']) or '-'}"
        )
    typer.echo(f"{len(rows)} of {total} archived report(s)")


def sanctions_lookback(
    since: Since = None,
    everything: Annotated[
        bool, typer.Option("--all", help="screen against every entry, not only the new and changed ones")
    ] = False,
    min_score: Annotated[float, typer.Option("--min-score", min=0.5, max=1.0)] = 0.9,
    as_json: JsonFlag = False,
) -> None:
    """Screen archived reports' parties against the sanctions lists' new and changed entries; hits become cases.

    The window is TRADEWATCH_LOOKBACK_WINDOW (one year) back from now, unless --since says otherwise.
    """
    import asyncio

    from services import server
    from services.casework import commands as casework
    from services.casework import lookback
    from services.sanctions.matcher import exceptions_from
    from services.sanctions.store import SanctionsStore

    settings = load_settings()
    start = when(since, "--since") or lookback.window_start(settings.lookback_window)

    async def lists() -> tuple[Any, Any]:
        endpoint = server.resolve(settings)
        redis = server.client(endpoint)
        try:
            sanctions = SanctionsStore(redis, settings)
            _, found, _ = await sanctions.exceptions()
            return await lookback.read_lists(sanctions), exceptions_from(found)
        finally:
            await redis.aclose()
            endpoint.close()

    try:
        in_force, exceptions = asyncio.run(lists())
    except server.ServerUnavailable as error:
        fail(str(error))

    async def go(store: Store) -> Any:
        return await lookback.lookback(
            store, in_force, start, settings.case_due, min_score=min_score, exceptions=exceptions,
            everything=everything, candidates=settings.sanctions_candidates,
        )  # fmt: skip

    result = casework.run(settings, go)
    typer.echo(json.dumps(result.as_dict(), ensure_ascii=False) if as_json else lookback.render(result))
