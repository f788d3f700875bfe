"""``tradewatch db|cases|users|audit|screening ...``: the store of record from the command line.

Thin: each command parses its arguments, calls the casework function a console would call, and
prints the result (``--json`` where a program reads it). ``--as USER`` names who acts; their role
decides what they may do. A refusal (bad input, a step the case does not allow, a role too low)
is one plain sentence on stderr and exit code 1; a database that does not answer, exit code 2.

In the embedded default (no ``TRADEWATCH_DATABASE_URL``) the SQLite file is created and migrated
by the first command that needs it, and the first admin is made then, its one-time password shown
once on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from schemas.durations import parse_duration
from services.clitools import fail, load_settings
from services.settings import Settings

# The database layers (SQLAlchemy, the drivers, argon2) are imported by the commands that use
# them: every other `tradewatch` command and every worker starts without them.
if TYPE_CHECKING:
    from services import server
    from services.casework.screening import ExceptionView
    from services.casework.workflow import CaseDetail, CaseSummary, Casework
    from services.store import Store

T = TypeVar("T")

db_app = typer.Typer(help="The store of record's database: its schema.", no_args_is_help=True)
cases_app = typer.Typer(help="Cases: one per report, worked from open to closed.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the store of record and their roles.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The audit trail: verify it, export it, purge it past retention.", no_args_is_help=True
)
screening_app = typer.Typer(
    help='Screening exceptions: reviewed "not this party" decisions the rules stage skips.',
    no_args_is_help=True,
)

AsUser = Annotated[str, typer.Option("--as", help="the user acting (their role decides what they may do)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON")]


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(cases_app, name="cases")
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
    app.add_typer(screening_app, name="screening")


# --- running against the store


def refuse(message: str) -> NoReturn:
    fail(message, code=1)


async def prepare(store: Store, settings: Settings) -> tuple[str, str] | None:
    """The embedded default migrates by itself and makes its first admin; a configured database
    must have been upgraded (``tradewatch db upgrade``). Returns a first admin made now."""
    from services.casework import users
    from services.store import StoreUnavailable, migrate

    if settings.embedded_store:
        await migrate.upgrade(store)
        return await users.bootstrap_admin(store)
    if missing := await migrate.pending(store):
        raise StoreUnavailable(
            f"the database lacks migrations {', '.join(missing)}: run `tradewatch db upgrade` first"
        )
    return None


def announce_admin(created: tuple[str, str] | None, settings: Settings) -> None:
    """Show the first admin's one-time password, once: a sentence on a terminal, one JSON line
    (as every line on stderr is then) otherwise; at any log level, as it is never shown again."""
    if created is None:
        return
    name, password = created
    change = f"tradewatch users password {name} --as {name}"
    fmt = settings.log_format
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        line = {
            "event": f"the store of record had no user: made the admin {name!r} with a one-time password, shown this once",
            "user": name,
            "one_time_password": password,
            "set_another_with": change,
            "component": "store",
            "level": "warning",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        typer.echo(json.dumps(line), err=True)
        return
    typer.echo(
        f"tradewatch: the store of record had no user: made the admin {name!r} with the one-time "
        f"password {password}\n  It is shown this once. Set another with `{change}`.",
        err=True,
    )


def prepare_store(settings: Settings) -> None:
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
            return await prepare(store, settings)
        finally:
            await store.dispose()

    try:
        announce_admin(asyncio.run(go()), settings)
    except Exception as error:
        from services.logging import get_logger

        get_logger(component="store").error(
            "store of record not ready: the records stage waits for it", error=describe(error)
        )


def run(settings: Settings, work: Callable[[Store], Awaitable[T]], *, ready: bool = True) -> T:
    """Run ``work`` against the store; refusals and an unreachable database end the command."""
    from services.casework.access import Refused
    from services.store import Store, unavailable
    from services.store.engine import async_url, describe, display

    async def go() -> T:
        store = Store.from_settings(settings)
        try:
            if ready:
                announce_admin(await prepare(store, settings), settings)
            return await work(store)
        finally:
            await store.dispose()

    try:
        return asyncio.run(go())
    except Refused as refused:
        refuse(str(refused))
    except Exception as error:
        if not unavailable(error):
            raise
        fail(
            f"the store of record ({display(async_url(settings.store_url()))}) does not answer: {describe(error)}"
        )


def note(
    settings: Settings,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> str | None:
    """Append what another command did (a silence added or ended) to the audit trail; the reason
    it could not be recorded, or None. The command's own effect stands either way. In the
    embedded default before the store of record exists (no records stage ever ran), there is no
    trail to write to, and nothing is said."""
    from services.store import Store, StoreUnavailable, audit, migrate
    from services.store.engine import describe

    if settings.embedded_store and not settings.embedded_database.exists():
        return None

    async def go() -> None:
        store = Store.from_settings(settings)
        try:
            if settings.embedded_store:
                await migrate.upgrade(store)
            elif missing := await migrate.pending(store):
                raise StoreUnavailable(f"the database lacks migrations {', '.join(missing)}")
            async with store.writing() as session:
                await audit.append(session, actor, action, object_type, object_id, before, after)
        finally:
            await store.dispose()

    try:
        asyncio.run(go())
    except Exception as error:
        return describe(error)
    return None


def _now() -> datetime:
    return datetime.now(UTC)


def parse_when(value: str, *, end: bool = False, future: bool = False) -> datetime:
    """``2026-03-19`` (a day: its start, or with ``end`` the start of the next), an ISO time,
    or a duration (``7d``: that long ago, or with ``future`` from now)."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = date.fromisoformat(text)
        start = datetime.combine(day, time(), tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        seconds = parse_duration(text)
    except ValueError:
        refuse(f"{value!r} is not a date (2026-03-19), a time (2026-03-19T10:00Z) or a duration (7d)")
    return _now() + timedelta(seconds=seconds) if future else _now() - timedelta(seconds=seconds)


def _time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _until(due: datetime, now: datetime) -> str:
    seconds = (due - now).total_seconds()
    span = abs(seconds)
    amount = f"{span / 86_400:.0f} days" if span >= 2 * 86_400 else f"{span / 3_600:.0f} hours"
    if span < 3_600:
        amount = f"{span / 60:.0f} minutes"
    return f"in {amount}" if seconds >= 0 else f"overdue by {amount}"


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


# --- db


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database's schema up to date (the embedded default does this by itself), and
    make the first admin if there is no user yet."""
    from services.casework import users
    from services.store import migrate

    settings = load_settings()

    async def work(store: Store) -> None:
        before, after = await migrate.upgrade(store)
        if before == after:
            typer.echo(f"{store.shown}: up to date at {after}")
        else:
            typer.echo(f"{store.shown}: migrated from {before or 'an empty database'} to {after}")
        announce_admin(await users.bootstrap_admin(store), settings)

    run(settings, work, ready=False)


@db_app.command("status")
def db_status() -> None:
    """The database in use, its migration, and the migrations it lacks."""
    from services.store import migrate

    settings = load_settings()

    async def work(store: Store) -> None:
        at = await migrate.current(store)
        missing = await migrate.pending(store)
        typer.echo(f"database: {store.shown}")
        typer.echo(f"migration: {at or 'none (an empty database)'} (this version ships {migrate.head()})")
        if missing:
            typer.echo(f"lacking: {', '.join(missing)}: run `tradewatch db upgrade`")
            raise typer.Exit(1)

    run(settings, work, ready=False)


# --- cases


def _casework(settings: Settings, store: Store) -> Casework:
    from services.casework.workflow import Casework

    return Casework.from_settings(settings, store)


def _summary_lines(found: list[CaseSummary], now: datetime) -> list[str]:
    from services.store.models import CaseState

    header = ("id", "severity", "state", "due", "assignee", "report", "headline")
    rows = [
        (
            str(c.id),
            c.severity.value,
            c.state.label + (f" ({c.outcome.label})" if c.outcome else ""),
            (c.due_at.strftime("%Y-%m-%d") + (" overdue" if c.overdue(now) else ""))
            if c.state in (CaseState.OPEN, CaseState.IN_REVIEW)
            else "-",
            c.assignee or "-",
            c.report_id,
            c.headline + (f" [+{c.findings_after_close} after close]" if c.findings_after_close else ""),
        )
        for c in found
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in [header, *rows]
    ]


@cases_app.command("list")
def cases_list(
    actor: AsUser,
    state: Annotated[
        list[str], typer.Option(help="open, in_review, awaiting_approval, closed (repeat for several)")
    ] = [],  # noqa: B006
    severity: Annotated[list[str], typer.Option(help="info ... critical (repeat for several)")] = [],  # noqa: B006
    crossing: Annotated[str | None, typer.Option(help="a crossing, as alerts name it")] = None,
    assignee: Annotated[str | None, typer.Option(help="a user, or none for cases nobody has")] = None,
    since: Annotated[
        str | None, typer.Option(help="opened since: a date, a time, or a duration ago (7d)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    as_json: JsonFlag = False,
) -> None:
    """Cases, open work first: the worst and the most urgent at the top."""
    from services.casework.access import Refused
    from services.casework.workflow import CaseFilter, parse_severity, parse_state

    settings = load_settings()
    try:
        wanted = CaseFilter(
            states=[parse_state(s) for s in state] if state else (),
            severities=[parse_severity(s) for s in severity] if severity else (),
            crossing=crossing,
            assignee=assignee,
            since=parse_when(since) if since else None,
            limit=limit,
        )
    except Refused as refused:
        refuse(str(refused))
    found = run(settings, lambda store: _casework(settings, store).list(actor, wanted))
    now = _now()
    if as_json:
        _echo_json([c.as_dict(now) for c in found])
        return
    if not found:
        typer.echo("no cases")
        return
    for line in _summary_lines(found, now):
        typer.echo(line)


def _change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What an audit entry changed, in a few words: ``state open -> in_review; assignee - -> alice``."""
    parts = []
    for key in ("state", "assignee", "outcome", "severity", "due_at"):
        if key in after and before.get(key) != after.get(key) and (key in before or after.get(key)):
            old, new = before.get(key), after.get(key)
            if key == "due_at":
                old = str(old)[:16].replace("T", " ") if old else old
                new = str(new)[:16].replace("T", " ") if new else new
            parts.append(f"{key} {old or '-'} -> {new or '-'}")
    for key in ("reason", "note", "text"):
        if after.get(key):
            parts.append(f'{key} "{after[key] if len(after[key]) <= 80 else after[key][:77] + "..."}"')
    if after.get("alert_ids"):
        parts.append(f"{len(after['alert_ids'])} alerts ({', '.join(after.get('rule_ids', []))})")
    if after.get("exception_id"):
        parts.append(f"exception {after['exception_id']}: {after.get('name')} is not {after.get('entry')}")
    return "; ".join(parts)


def show_text(detail: CaseDetail, now: datetime) -> list[str]:
    from services.store.models import CaseState

    s, view = detail.summary, detail.case
    state = s.state.label + (f" as {s.outcome.label}" if s.outcome else "")
    if s.assignee:
        state += f", assigned to {s.assignee}"
    due = (
        f"due {_time(s.due_at)} ({_until(s.due_at, now)})"
        if s.state in (CaseState.OPEN, CaseState.IN_REVIEW)
        else ""
    )
    lines = [
        f"case {s.id}: {s.headline}",
        f"  state      {state}" + (f" (reopened {s.reopened}x)" if s.reopened else ""),
        f"  severity   {s.severity.value}" + (f", {due}" if due else ""),
        f"  report     {s.report_id}" + (f" from {view.source}" if view.source else "")
        + (f", reported {view.reported_at[:10]}" if view.reported_at else ""),
        f"  opened     {_time(s.opened_at)}" + (f", closed {_time(s.closed_at)}" if s.closed_at else ""),
    ]  # fmt: skip
    if view.route or view.crossing:
        lines.append(f"  route      {view.route or '?'}" + (f" via {view.crossing}" if view.crossing else ""))
    if view.importer:
        lines.append(f"  importer   {view.importer}")
    if view.exporter:
        lines.append(f"  exporter   {view.exporter}")
    if view.url:
        lines.append(f"  link       {view.url}")
    if s.findings_after_close:
        lines.append(f"  note       {s.findings_after_close} alerts arrived after the case was closed")
    lines += ["", f"findings ({s.findings} alerts):"]
    after_close = set(detail.after_close)
    for finding in view.findings:
        lines.append(f"  {finding.severity:<8}  {finding.what}")
        for reason in finding.reasons:
            late = " (after the close)" if reason.alert_id in after_close else ""
            lines.append(
                f"      {reason.title} [{reason.rule_id}, {reason.severity}]{late}: {reason.legal_basis}"
            )
            lines += [f"        - {why}" for why in reason.why]
    if view.common:
        lines.append("  shared by every finding: " + "; ".join(view.common))
    if view.items:
        lines += ["", "items:"]
        for item in view.items:
            lines.append(f"  {item.index + 1}. {item.label}" + (f": {item.amounts}" if item.amounts else ""))
    if detail.decisions:
        lines += ["", "decisions:"]
        for d in detail.decisions:
            line = f"  {_time(d.at)} {d.by}: {d.outcome.label}, {d.reason!r}"
            if d.needs_approval:
                line += (
                    f"; approved by {d.approved_by} {_time(d.approved_at)}"
                    if d.approved_by
                    else "; awaiting approval"
                )
            if d.withdrawn_at:
                line += f"; withdrawn {_time(d.withdrawn_at)} (reopened)"
            lines.append(line)
    if detail.exceptions:
        lines += ["", "screening exceptions decided here:"]
        for e in detail.exceptions:
            status = "revoked" if e["revoked"] else f"until {e['until'][:10]}"
            lines.append(
                f"  {e['id']}: {e['name']!r} is not {e['entry']} ({e['by']}, {status}): {e['reason']}"
            )
    if detail.comments:
        lines += ["", "comments:"]
        lines += [f"  {_time(c.at)} {c.author}: {c.body}" for c in detail.comments]
    lines += ["", "history:"]
    for h in detail.history:
        change = _change(h["before"], h["after"])
        lines.append(
            f"  {h['at'][:16].replace('T', ' ')} {h['actor']} {h['action']}"
            + (f": {change}" if change else "")
        )
    return lines


@cases_app.command("show")
def cases_show(
    case_id: Annotated[int, typer.Argument(help="the case's number")],
    actor: AsUser,
    as_json: JsonFlag = False,
) -> None:
    """One case: its facts, findings, items, decisions, comments and history."""
    settings = load_settings()
    detail = run(settings, lambda store: _casework(settings, store).show(actor, case_id))
    if as_json:
        _echo_json(detail.as_dict())
        return
    for line in show_text(detail, _now()):
        typer.echo(line)


def _done(summary: CaseSummary, what: str) -> None:
    extra = f" ({summary.outcome.label})" if summary.outcome else ""
    typer.echo(
        f"case {summary.id} {what}: {summary.state.label}{extra}"
        + (f", assigned to {summary.assignee}" if summary.assignee else "")
    )


@cases_app.command("assign")
def cases_assign(
    case_id: Annotated[int, typer.Argument(help="the case's number")],
    assignee: Annotated[str, typer.Argument(help="the user who takes it, or none")],
    actor: AsUser,
) -> None:
    """Give a case to someone (an open case goes into review); `none` gives it to nobody."""
    settings = load_settings()
    who = None if assignee.lower() in ("none", "-", "nobody") else assignee
    summary = run(settings, lambda store: _casework(settings, store).assign(actor, case_id, who))
    _done(summary, "assigned" if who else "unassigned")


@cases_app.command("comment")
def cases_comment(
    case_id: Annotated[int, typer.Argument(help="the case's number")],
    text: Annotated[str, typer.Argument(help="the comment ('-' reads it from stdin)")],
    actor: AsUser,
) -> None:
    """Add a comment to a case."""
    settings = load_settings()
    body = sys.stdin.read() if text == "-" else text
    comment = run(settings, lambda store: _casework(settings, store).comment(actor, case_id, body))
    typer.echo(f"case {case_id}: comment {comment.id} added by {comment.author}")


@cases_app.command("close")
def cases_close(
    case_id: Annotated[int, typer.Argument(help="the case's number")],
    actor: AsUser,
    outcome: Annotated[
        str | None,
        typer.Option(help="violation, false_positive, not_relevant, escalated or reported (to authorities)"),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="why, for whoever reads the case")] = None,
) -> None:
    """Close a case with an outcome and a reason. A high or critical case closed as false positive
    or not relevant waits for a reviewer's approval (a second person)."""
    from services.store.models import CaseState

    settings = load_settings()
    summary = run(settings, lambda store: _casework(settings, store).close(actor, case_id, outcome, reason))
    _done(summary, "closed")
    if summary.state is CaseState.AWAITING_APPROVAL:
        typer.echo(
            f"  a reviewer other than {actor} approves it: tradewatch cases approve {case_id} --as REVIEWER"
        )


@cases_app.command("reopen")
def cases_reopen(
    case_id: Annotated[int, typer.Argument(help="the case's number")],
    actor: AsUser,
    reason: Annotated[str | None, typer.Option(help="why it is opened again")] = None,
) -> None:
    """Reopen a closed case (or one awaiting approval), with a reason."""
    settings = load_settings()
    summary = run(settings, lambda store: _casework(settings, store).reopen(actor, case_id, reason))
    _done(summary, "reopened")


@cases_app.command("approve")
def cases_approve(
    case_id: Annotated[int, typer.Argument(help="the case's number")],
    actor: AsUser,
    note: Annotated[str | None, typer.Option(help="a note with the approval")] = None,
) -> None:
    """Approve a close that needs a second person (reviewer role; not the one who closed it)."""
    settings = load_settings()
    summary = run(settings, lambda store: _casework(settings, store).approve(actor, case_id, note))
    _done(summary, "approved")


# --- users


def _read_password(password_file: Path | None, prompt: bool) -> str | None:
    if password_file is not None:
        try:
            return password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            refuse(f"{password_file}: {error.strerror}")
    if not prompt:
        return None
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="the user's name (lower case)")],
    role: Annotated[str, typer.Option(help="viewer, analyst, reviewer or admin")],
    actor: AsUser,
    password_file: Annotated[
        Path | None, typer.Option(help="a file holding the console password (else it is asked for)")
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="no console login (command line only)")
    ] = False,
) -> None:
    """Add a user with a role (admins only); the password, hashed with argon2, is for the console."""
    from services.casework import users

    settings = load_settings()
    password = _read_password(password_file, prompt=not no_password)
    view = run(settings, lambda store: users.add_user(store, actor, name, role, password))
    typer.echo(
        f"user {view.name} added as {view.role}" + ("" if view.has_password else " (no console password)")
    )


@users_app.command("list")
def users_list(actor: AsUser, as_json: JsonFlag = False) -> None:
    """Users, their roles, and whether they are disabled."""
    from services.casework import users

    settings = load_settings()
    found = run(settings, lambda store: users.list_users(store, actor))
    if as_json:
        _echo_json([u.as_dict() for u in found])
        return
    width = max([len(u.name) for u in found] + [4])
    for u in found:
        notes = [n for n, on in (("disabled", u.disabled), ("no password", not u.has_password),
                                 ("one-time password", u.must_change_password)) if on]  # fmt: skip
        typer.echo(
            f"{u.name.ljust(width)}  {u.role:<8}  added {u.created_at.date()} by {u.created_by}"
            + (f"  ({', '.join(notes)})" if notes else "")
        )


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="the user")], actor: AsUser) -> None:
    """Disable a user (admins only): they may no longer act or log in; what they did stays."""
    from services.casework import users

    settings = load_settings()
    run(settings, lambda store: users.disable_user(store, actor, name))
    typer.echo(f"user {name} disabled")


@users_app.command("password")
def users_password(
    name: Annotated[str, typer.Argument(help="the user")],
    actor: AsUser,
    password_file: Annotated[Path | None, typer.Option(help="a file holding the new password")] = None,
) -> None:
    """Set a console password: your own, or anyone's as an admin (then it is a one-time password)."""
    from services.casework import users

    settings = load_settings()
    password = _read_password(password_file, prompt=True)
    assert password is not None
    run(settings, lambda store: users.set_password(store, actor, name, password))
    typer.echo(f"password of {name} set")


# --- audit


@audit_app.command("verify")
def audit_verify(as_json: JsonFlag = False) -> None:
    """Recompute the audit chain: exit 0 when intact, 1 naming the first broken entry."""
    from services.casework import trail

    settings = load_settings()
    result = run(settings, trail.verify)
    if as_json:
        _echo_json({"ok": result.ok, "checked": result.checked, "first": result.first, "last": result.last,
                    "broken": result.broken, "problem": result.problem})  # fmt: skip
    else:
        typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    actor: AsUser,
    since: Annotated[str | None, typer.Option(help="from this date or time (or a duration ago: 30d)")] = None,
    until: Annotated[str | None, typer.Option(help="up to this date (included) or time (excluded)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="write to this file (default: stdout)")] = None,
) -> None:
    """The audit entries of a period for a regulator: seq, at, actor, action, object, before, after
    and the hashes (reviewers and admins; the export is itself recorded)."""
    from services.casework import trail

    settings = load_settings()
    if fmt not in trail.FORMATS:
        refuse(f"--format {fmt!r}: use jsonl or csv")
    start = parse_when(since) if since else None
    end = parse_when(until, end=True) if until else None

    async def work(store: Store) -> int:
        count = 0
        with contextlib.ExitStack() as stack:
            target = stack.enter_context(out.open("w", encoding="utf-8", newline="")) if out else sys.stdout
            async with contextlib.aclosing(trail.export(store, actor, start, end, fmt)) as lines:
                try:
                    async for line in lines:
                        target.write(line)
                        count += 1
                    target.flush()
                except BrokenPipeError:  # the reader went away (`| head`): stop, quietly
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return count

    count = run(settings, work)
    if out is not None:
        typer.echo(f"wrote {count - (1 if fmt == 'csv' else 0)} entries to {out}", err=True)


@audit_app.command("purge")
def audit_purge(
    actor: AsUser,
    yes: Annotated[bool, typer.Option("--yes", help="really delete")] = False,
) -> None:
    """Delete audit entries and closed cases older than TRADEWATCH_AUDIT_RETENTION (admins only);
    nothing younger is ever deleted, and the chain still verifies from where it now starts."""
    from services.casework import trail

    settings = load_settings()
    if not yes:
        refuse("purging deletes records for good: add --yes")
    done = run(settings, lambda store: trail.purge(store, actor, settings.audit_retention))
    typer.echo(
        f"purged {done.entries} audit entries and {done.cases} closed cases from before "
        f"{done.cutoff.date()}; the chain now starts after entry {done.anchor}"
    )


# --- screening exceptions


async def _publish(settings: Settings, store: Store) -> str:
    """Publish the exceptions in force now, where a server runs; else say when they will be."""
    from services import server
    from services.casework import screening

    endpoint = running_server(settings)
    if endpoint is None:
        return "no server runs now: the records stage publishes it when it starts"
    client = server.client(endpoint)
    try:
        count = await screening.publish(store, client, settings)
    except Exception as error:
        return f"not published now ({type(error).__name__}): the records stage publishes it within 30s"
    finally:
        await client.aclose()
    return f"published: {count} exceptions in force for the rules stage"


def running_server(settings: Settings) -> server.Endpoint | None:
    """The configured server, or the embedded one if it runs; never starts one."""
    from services import server

    if settings.redis_url is not None:
        return server.resolve(settings)
    with contextlib.suppress(ValueError, KeyError, OSError):
        port = int(json.loads((settings.data_dir / "valkey" / "server.json").read_text())["port"])
        if server.ping(port):
            return server.Endpoint(f"redis://127.0.0.1:{port}/0")
    return None


@screening_app.command("except")
def screening_except(
    name: Annotated[
        str, typer.Argument(help="the name as screened (an importer, an exporter, a name in a text)")
    ],
    entry: Annotated[str, typer.Option(help="the listed entry's reference it is not (e.g. KPe.016)")],
    reason: Annotated[str, typer.Option(help="why it is not that party")],
    until: Annotated[str, typer.Option(help="until this date (included), or for a duration (180d)")],
    actor: AsUser,
    case: Annotated[int | None, typer.Option(help="the case where it was decided")] = None,
) -> None:
    """Keep a reviewed "not this party" decision (reviewers): screening skips matches of this name
    to this listed entry until it lapses, and the report's alerts say so."""
    from services.casework import screening

    settings = load_settings()
    expires = parse_when(until, end=True, future=True)

    async def work(store: Store) -> tuple[ExceptionView, str]:
        view = await screening.add(store, actor, name, entry, reason, expires, case)
        return view, await _publish(settings, store)

    view, published = run(settings, work)
    typer.echo(
        f"screening exception {view.id}: {view.name!r} is not {view.entry}, until {_time(view.until)}; {published}"
    )


@screening_app.command("revoke")
def screening_revoke(
    exception_id: Annotated[int, typer.Argument(help="the exception's number")],
    reason: Annotated[str, typer.Option(help="why it no longer holds")],
    actor: AsUser,
) -> None:
    """Revoke a screening exception (reviewers): screening matches that name again."""
    from services.casework import screening

    settings = load_settings()

    async def work(store: Store) -> tuple[ExceptionView, str]:
        view = await screening.revoke(store, actor, exception_id, reason)
        return view, await _publish(settings, store)

    view, published = run(settings, work)
    typer.echo(f"screening exception {view.id} revoked; {published}")


@screening_app.command("exceptions")
def screening_exceptions(
    actor: AsUser,
    all_: Annotated[bool, typer.Option("--all", help="also revoked and expired ones")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Screening exceptions in force (``--all``: every one kept), with who, why and until when."""
    from services.casework import screening

    settings = load_settings()
    found = run(settings, lambda store: screening.listed(store, actor, all_))
    now = _now()
    if as_json:
        _echo_json([e.as_dict(now) for e in found])
        return
    if not found:
        typer.echo("no screening exceptions" + ("" if all_ else " in force"))
        return
    for e in found:
        where = f", case {e.case_id}" if e.case_id else ""
        typer.echo(
            f"{e.id}: {e.name!r} is not {e.entry}: {e.reason} ({e.by}{where}, until {e.until.date()}; {e.status(now)})"
        )


__all__ = ["prepare", "register"]
