"""``tradewatch status`` and ``tradewatch dlq list|show|replay|purge STAGE``.

These commands only read from, or act on, a server that already runs: with no
``TRADEWATCH_REDIS_URL`` they look for the shared embedded server of ``DATA_DIR`` and say so
plainly when none runs, rather than start an empty one and report an empty pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import redis.asyncio as aredis
import typer

from services import server
from services.clitools import fail, load_settings
from services.ops import dlq
from services.ops.status import Snapshot, snapshot
from services.settings import Settings

T = TypeVar("T")

dlq_app = typer.Typer(help="Dead letters: list, show, replay and purge them.", no_args_is_help=True)


def _endpoint(settings: Settings) -> server.Endpoint:
    if settings.redis_url is not None:
        return server.resolve(settings)  # a configured server (or cluster): nothing is started
    state = settings.data_dir / "valkey" / "server.json"
    with contextlib.suppress(ValueError, KeyError, OSError):
        port = int(json.loads(state.read_text())["port"])
        if server.ping(port):
            return server.Endpoint(f"redis://127.0.0.1:{port}/0")
    return fail(
        f"no server to read: TRADEWATCH_REDIS_URL is unset and no embedded server runs for "
        f"{settings.data_dir} (start one with `tradewatch server` or `tradewatch up`)"
    )


def _with_redis(settings: Settings, work: Callable[[aredis.Redis], Awaitable[T]]) -> T:
    endpoint = _endpoint(settings)

    async def go() -> T:
        client = server.client(endpoint)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _as_json(json_flag: bool) -> bool:
    return json_flag or not sys.stdout.isatty()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7_200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3_600:.1f}h"


def _print_tables(snap: Snapshot) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    streams = Table(title=f"streams ({snap.namespace})")
    for column in ("stream", "length", "last entry"):
        streams.add_column(column)
    for s in snap.streams:
        streams.add_row(s.name, str(s.length), s.last_entry_at or "-")
    console.print(streams)

    groups = Table(title="consumer groups")
    for column in ("stream", "group", "lag", "pending", "oldest pending", "consumers (idle)", "state"):
        groups.add_column(column)
    for g in snap.groups:
        consumers = "\n".join(f"{c.name} ({_age(c.idle_s)}, {c.pending} pending)" for c in g.consumers)
        state = f"[red]STALLED[/red]: {g.stall_reason}" if g.stalled else "ok"
        lag = "?" if g.lag is None else str(g.lag)
        groups.add_row(
            g.stream, g.group, lag, str(g.pending), _age(g.oldest_pending_age_s), consumers or "-", state
        )
    console.print(groups)

    workers = Table(title="live workers (heartbeats)")
    for column in ("consumer", "stages", "host", "pid", "heartbeat", "last batch"):
        workers.add_column(column)
    for w in snap.workers:
        workers.add_row(
            w.consumer,
            ", ".join(w.stages),
            w.host,
            str(w.pid),
            f"{_age(w.heartbeat_age_s)} ago",
            f"{_age(w.last_progress_age_s)} ago" if w.last_progress_age_s is not None else "-",
        )
    console.print(workers)
    dead = ", ".join(f"{stage}: {count}" for stage, count in snap.dead_letters.items())
    console.print(f"dead letters: {dead}")
    console.print(f"rule set version: {snap.ruleset_version or '-'}")
    if not snap.sanctions:
        console.print("sanctions lists: none loaded (party conditions never hold)")
    for listed in snap.sanctions:
        line = f"sanctions list {listed.list}: {listed.entries} entries, {listed.since}, {listed.age_days} days old"
        console.print(f"[red]{listed.warning}[/red]" if listed.warning else line, highlight=False)
    console.print(f"items the catalog did not recognise: {snap.unrecognised_items}")
    console.print(f"last alert: {snap.last_alert_at or '-'}; last delivery: {snap.last_delivery_at or '-'}")


def status(
    json_out: Annotated[bool, typer.Option("--json", help="JSON even on a terminal")] = False,
) -> None:
    """Streams, groups (lag, pending, consumers), live workers, dead letters, rule set, last alert,
    the sanctions lists in force and their age (those older than TRADEWATCH_SANCTIONS_MAX_AGE flagged).

    Exits 1 when a group is stalled, so a cron job or a probe can act on it.
    """
    settings = load_settings()
    snap = _with_redis(settings, lambda r: snapshot(r, settings))
    if _as_json(json_out):
        typer.echo(json.dumps(snap.as_dict(), indent=2))
    else:
        _print_tables(snap)
    if snap.stalled:
        raise typer.Exit(1)


StageArg = Annotated[
    dlq.DeadStage, typer.Argument(help="whose dead letters: ingest (rejected input), rules, notify")
]


@dlq_app.command("list")
def list_(
    stage: StageArg,
    limit: Annotated[int, typer.Option(help="at most this many, oldest first")] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines even on a terminal")] = False,
) -> None:
    """List a stage's dead letters: id, when, deliveries, reason (notify: subscription and channel too)."""
    settings = load_settings()
    stream = dlq.dead_streams_label(settings.streams, stage)
    entries = _with_redis(settings, lambda r: dlq.list_all(r, settings.streams, stage, limit))
    rows = [e.summary() for e in entries]
    if _as_json(json_out):
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{stream}: {len(rows)} shown")
    keys = ["id", "at", "deliveries", "entry_id"]
    if stage is dlq.DeadStage.notify:
        keys += ["subscription", "channel"]
    keys.append("reason")
    for key in keys:
        table.add_column("entry" if key == "entry_id" else key)
    for row in rows:
        table.add_row(*(row.get(key, "") for key in keys))
    Console().print(table)


@dlq_app.command("show")
def show(
    stage: StageArg, entry_id: Annotated[str, typer.Argument(help="the dead letter's id (from list)")]
) -> None:
    """Print one dead letter, every field, as JSON."""
    settings = load_settings()
    stream = dlq.dead_streams_label(settings.streams, stage)
    try:
        entry = _with_redis(settings, lambda r: dlq.find(r, settings.streams, stage, entry_id))
    except dlq.AmbiguousId as error:
        fail(str(error), 1)
    if entry is None:
        fail(f"no entry {entry_id} in {stream}", 1)
    typer.echo(json.dumps(entry.as_dict(), indent=2, ensure_ascii=False))


@dlq_app.command("replay")
def replay(
    stage: StageArg,
    ids: Annotated[
        list[str] | None, typer.Argument(help="dead letter ids (from list); none: give --all")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter of the stage")] = False,
) -> None:
    """Put dead letters back on the stage's input stream (original fields) and remove them here."""
    settings = load_settings()
    if not ids and not all_:
        fail("name the ids to replay, or give --all")
    try:
        done = _with_redis(settings, lambda r: dlq.replay(r, settings.streams, stage, None if all_ else ids))
    except (dlq.CannotReplay, dlq.AmbiguousId, KeyError) as error:
        fail(str(error).strip("'\""), 1)
    for dead_id, new_id in done:
        typer.echo(json.dumps({"replayed": dead_id, "as": new_id}))
    typer.echo(f"{len(done)} replayed", err=True)


@dlq_app.command("purge")
def purge(
    stage: StageArg,
    ids: Annotated[
        list[str] | None, typer.Argument(help="dead letter ids (from list); none: all of them")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="really delete (nothing is deleted without it)")] = False,
) -> None:
    """Delete dead letters for good: the given ids, or the whole stream. Needs --yes."""
    settings = load_settings()
    stream = dlq.dead_streams_label(settings.streams, stage)
    if not yes:
        what = f"{len(ids)} entries of {stream}" if ids else f"every entry of {stream}"
        fail(f"this deletes {what} for good: run again with --yes", 1)
    try:
        count = _with_redis(settings, lambda r: dlq.purge(r, settings.streams, stage, ids or None))
    except dlq.AmbiguousId as error:
        fail(str(error), 1)
    typer.echo(f"{count} purged from {stream}")
