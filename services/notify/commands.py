"""``tradewatch notify preview``, ``tradewatch silence ...`` and ``tradewatch alerts ...``.

``alerts list`` and ``alerts show`` answer "who was told what, when, and did it arrive" from the
history the notify stage keeps in Redis (``TRADEWATCH_NOTIFY_HISTORY_RETENTION``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from schemas.alert import Alert
from services.clitools import fail, load_settings
from services.runtime import Context
from services.settings import Settings
from services.yamlfile import ConfigError

T = TypeVar("T")

notify_app = typer.Typer(help="Render notifications without sending them.", no_args_is_help=True)
silence_app = typer.Typer(
    help="Hold back alerts that match, for a while, with a reason.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Who was told what, when, and did it arrive.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
    app.add_typer(silence_app, name="silence")
    app.add_typer(alerts_app, name="alerts")


def _with_redis(settings: Settings, work: Callable[[Context], Awaitable[T]]) -> T:
    from services import runtime
    from services.server import ServerUnavailable

    try:
        ctx = runtime.context(settings)
    except ServerUnavailable as error:
        fail(str(error))

    async def run() -> T:
        try:
            return await work(ctx)
        finally:
            await ctx.redis.aclose()

    try:
        return asyncio.run(run())
    finally:
        ctx.endpoint.close()


# --- notify preview


@notify_app.command("preview")
def preview(
    alert_file: Annotated[Path, typer.Argument(help="an alert as JSON (one document, or JSON Lines)")],
    subscription: Annotated[str, typer.Option("--subscription", "-s", help="subscription name")],
    channel: Annotated[
        str | None,
        typer.Option("--channel", "-c", help="a channel id or tag: show exactly what it would receive"),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="text, markdown, html or json, without channels; default: each channel's"
        ),
    ] = None,
) -> None:
    """Show what a subscription's channels would receive for these alerts, without sending anything:
    a mail's subject and its plain-text and HTML parts, a webhook's JSON payload, a chat's markdown."""
    from services.notify.channels import load_channels
    from services.notify.preview import delivery
    from services.notify.subscriptions import load_subscriptions, renderer_for

    settings = load_settings()
    try:
        text = alert_file.read_text(encoding="utf-8")
    except OSError as error:
        fail(f"{alert_file}: {error.strerror}")
    try:
        stripped = text.strip()
        docs = [json.loads(stripped)] if stripped.startswith("{") and "\n{" not in stripped else []
        if not docs:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        alerts = [Alert.model_validate(d) for d in docs]
    except (ValueError, ValidationError) as error:
        fail(f"{alert_file} is not an alert: {error}")
    try:
        subs = {s.name: s for s in load_subscriptions(settings.subscriptions_file)}
    except ConfigError as error:
        fail(f"the subscriptions have errors:\n{error}")
    sub = subs.get(subscription)
    if sub is None:
        fail(f"no subscription {subscription!r}; there are: {', '.join(subs)}")
    renderer = renderer_for(sub)
    if not any(sub.wants(a) for a in alerts):
        typer.echo(f"note: subscription {sub.name!r} would not receive these alerts", err=True)
    if fmt is not None:
        if fmt not in ("text", "markdown", "html", "json"):
            fail(f"--format {fmt!r}: use text, markdown, html or json")
        message = renderer.render(alerts, fmt)
        typer.echo(f"--- {fmt}\ntitle: {message.title}\n\n{message.body}\n")
        return
    try:
        channels = [c for c in load_channels(settings.channels_file) if c.tags & set(sub.channels)]
    except ConfigError as error:
        fail(f"the channels have errors:\n{error}")
    if channel is not None:
        chosen = [c for c in channels if channel in (c.id, *c.tags)]
        if not chosen:
            known = ", ".join(c.id for c in channels) or "none"
            fail(f"no channel {channel!r} among subscription {sub.name!r}'s channels ({known})")
        channels = chosen
    if not channels:
        fail(f"subscription {sub.name!r} has no channel configured (tags {', '.join(sub.channels)})")
    for ch in channels:
        typer.echo(
            f"=== {ch.id} ({ch.display}): {ch.format}\n{delivery(ch, renderer.render(alerts, ch.format))}\n"
        )


# --- silences


@silence_app.command("add")
def silence_add(
    match: Annotated[list[str], typer.Option("--match", "-m", help="KEY=VALUE; every one must hold")],
    duration: Annotated[str, typer.Option("--for", help="how long, e.g. 2h, 7d")],
    by: Annotated[str, typer.Option("--by", help="who is silencing")],
    reason: Annotated[str, typer.Option("--reason", help="why, for whoever reads the list")],
) -> None:
    """Hold back matching alerts for a while; they are recorded and counted, not sent.

    A matcher that no alert could satisfy (a rule id the live rule set lacks, an unknown crossing,
    category, severity, country or HS chapter, a subscription that does not exist) is refused.
    """
    from services.notify.silencing import add_silence, checked_request

    settings = load_settings()
    try:
        checked_request(match, duration, by, reason)
    except ValueError as error:
        fail(str(error))

    async def add(ctx: Context) -> Any:
        try:
            return await add_silence(ctx.redis, settings, match, duration, by, reason)
        except ConfigError as error:
            return ValueError(f"cannot check the matchers, the configuration has errors:\n{error}")
        except ValueError as error:
            return error

    added = _with_redis(settings, add)
    if isinstance(added, Exception):
        fail(str(added))
    silence, note = added
    if note:
        typer.echo(f"note: {note}", err=True)
    typer.echo(silence.id)
    _audit(settings, silence.created_by, "silence.added", silence)


def _audit(settings: Settings, actor: str, action: str, silence: Any, before: Any = None) -> None:
    """Silences are in the store of record's audit trail too (who, what, until when, why)."""
    from services.casework.commands import note

    problem = note(
        settings,
        actor,
        action,
        "silence",
        silence.id,
        before.audited() if before else None,
        silence.audited(),
    )
    if problem is not None:
        typer.echo(f"note: the silence stands, but the audit trail could not record it: {problem}", err=True)


@silence_app.command("list")
def silence_list(
    all_: Annotated[bool, typer.Option("--all", help="also the expired ones")] = False,
) -> None:
    """Silences with their matchers, owner, reason, end and how many alerts each held back."""
    from services.notify.silences import SilenceStore, describe

    settings = load_settings()

    async def rows(ctx: Context) -> list[dict[str, str]]:
        store = SilenceStore(ctx.redis, settings.streams.notify_namespace)
        now = time.time()
        counts = await store.counted()
        return [describe(s, counts.get(s.id, 0), now) for s in await store.all() if all_ or s.active(now)]

    found = _with_redis(settings, rows)
    if not found:
        typer.echo("no silences" if all_ else "no active silences")
    for row in found:
        typer.echo(
            f"{row['id']}  {row['state']:<7}  until {row['until']}  silenced {row['silenced']}  "
            f"by {row['by']}  {row['matchers']}  reason: {row['reason']}"
        )


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="the id from silence add or list")],
    by: Annotated[
        str | None, typer.Option("--by", help="who ends it, for the audit trail (default: your login)")
    ] = None,
) -> None:
    """End a silence now; matching alerts are sent again from here on."""
    import getpass

    from services.notify.silences import Silence, SilenceStore

    settings = load_settings()

    async def expire(ctx: Context) -> tuple[Silence, Silence] | None:
        store = SilenceStore(ctx.redis, settings.streams.notify_namespace)
        before = next((s for s in await store.all() if s.id == silence_id), None)
        ended = await store.expire(silence_id, time.time())
        return (before, ended) if before is not None and ended is not None else None

    done = _with_redis(settings, expire)
    if done is None:
        fail(f"no silence {silence_id!r}", code=1)
    typer.echo(f"expired {silence_id}")
    _audit(settings, (by or getpass.getuser()).strip(), "silence.expired", done[1], before=done[0])


# --- alerts


def summarise(history: list[dict[str, Any]]) -> str:
    """``sent 2, queued 1, silenced 1``: the last state of each (subscription, channel)."""
    last: dict[tuple[str, str], str] = {}
    for event in history:
        last[(event.get("subscription", ""), event.get("channel", ""))] = event["event"]
    counts = Counter(last.values())
    return ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "no events"


@alerts_app.command("list")
def alerts_list(
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
) -> None:
    """The latest alerts with where each stands: sent, queued, failed (retrying), dead, silenced."""
    from services.notify.outbox import Outbox, iso

    settings = load_settings()

    async def rows(ctx: Context) -> list[str]:
        box = Outbox(
            ctx.redis,
            settings.streams.notify_namespace,
            settings.notify_history_retention,
            settings.dedup_retention,
        )
        lines = []
        for alert_id, at in await box.recent(max(1, limit)):
            alert = await box.alert(alert_id)
            what = (
                f"{alert.severity.value:<8} {alert.rule_id}  report {alert.report_id}" if alert else "(gone)"
            )
            lines.append(f"{iso(at)}  {alert_id}  {what}  [{summarise(await box.history(alert_id))}]")
        return lines

    lines = _with_redis(settings, rows)
    typer.echo("\n".join(lines) if lines else "no alerts recorded")


@alerts_app.command("show")
def alerts_show(alert_id: Annotated[str, typer.Argument(help="an alert id (a-...)")]) -> None:
    """One alert and its history: every subscription and channel, each attempt, its outcome and time."""
    from services.notify.outbox import Outbox

    settings = load_settings()

    async def load(ctx: Context) -> tuple[Alert | None, list[dict[str, Any]]]:
        box = Outbox(
            ctx.redis,
            settings.streams.notify_namespace,
            settings.notify_history_retention,
            settings.dedup_retention,
        )
        return await box.alert(alert_id), await box.history(alert_id)

    alert, history = _with_redis(settings, load)
    if alert is None and not history:
        fail(f"no alert {alert_id!r} in the history (kept {settings.notify_history_retention:g}s)", code=1)
    if alert is not None:
        typer.echo(f"{alert.alert_id}  [{alert.severity.value.upper()}] {alert.title}")
        typer.echo(f"  rule {alert.rule_id} v{alert.rule_version}; report {alert.report_id}; {alert.summary}")
        typer.echo(f"  legal basis: {alert.legal_basis}")
    for event in history:
        extra = " ".join(
            f"{k}={event[k]}" for k in ("attempt", "retry_at", "ms", "delivery", "detail") if k in event
        )
        where = " ".join(p for p in (event.get("subscription"), event.get("channel")) if p)
        typer.echo(f"  {event['at']}  {event['event']:<12}  {where}  {extra}".rstrip())
