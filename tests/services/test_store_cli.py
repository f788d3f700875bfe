"""The store of record's commands through typer's CliRunner: db, users, cases, audit, screening."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from services.casework.records import record_alerts
from services.cli import app
from services.settings import DEFAULT_CASE_DUE, Settings
from services.store import Store
from services.store.migrate import head
from tests.dbfixtures import sample_alerts

SHIPYARD = "sample-2026-03-rason-shipyard"


def base_env(settings: Settings, tmp_path: Path) -> dict[str, str | None]:
    assert settings.redis_url is not None
    return {
        "TRADEWATCH_REDIS_URL": settings.redis_url.get_secret_value(),
        "TRADEWATCH_NAMESPACE": settings.namespace,
        "TRADEWATCH_DATA_DIR": str(tmp_path / "data"),
        "TRADEWATCH_DATABASE_URL": None,
        "TRADEWATCH_LOG_LEVEL": "warning",
    }


class Cli:
    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = self.runner.invoke(app, list(args), env=self.env, input=stdin)
        assert result.exit_code == code, (
            f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
        )
        return result


def seed(url: str) -> None:
    async def go() -> None:
        store = Store(url)
        try:
            async with store.writing() as session:
                await record_alerts(
                    session, [a for g in sample_alerts().values() for a in g], DEFAULT_CASE_DUE
                )
        finally:
            await store.dispose()

    asyncio.run(go())


def test_the_embedded_default_migrates_by_itself_and_shows_the_first_admin_password_once(
    settings: Settings, tmp_path: Path
) -> None:
    cli = Cli(base_env(settings, tmp_path))
    first = cli("users", "list", "--as", "admin")
    # Off a terminal every line on stderr is JSON, this one too.
    (shown,) = [json.loads(line) for line in first.stderr.splitlines()]
    assert shown["event"].startswith("the store of record had no user: made the admin 'admin'")
    assert (shown["user"], len(shown["one_time_password"])) == ("admin", 24)
    assert first.stdout.startswith("admin ")
    assert "one-time password" in first.stdout
    assert (tmp_path / "data" / "tradewatch.db").exists()
    again = cli("users", "list", "--as", "admin")
    assert "one-time password" not in again.stderr  # shown once
    status = cli("db", "status")
    assert f"migration: {head()}" in status.stdout
    assert "tradewatch.db" in status.stdout


def test_users_added_with_a_prompted_password_and_disabled(settings: Settings, tmp_path: Path) -> None:
    cli = Cli(base_env(settings, tmp_path))
    cli("users", "list", "--as", "admin")
    added = cli("users", "add", "lena", "--role", "analyst", "--as", "admin",
                stdin="a long enough secret\na long enough secret\n")  # fmt: skip
    assert added.stdout.strip().endswith("user lena added as analyst")
    short = cli("users", "add", "lea", "--role", "analyst", "--as", "admin", stdin="short\nshort\n", code=1)
    assert short.stderr.strip() == "tradewatch: a password needs at least 12 characters"
    assert cli("users", "disable", "lena", "--as", "admin").stdout.strip() == "user lena disabled"
    listed = json.loads(cli("users", "list", "--as", "admin", "--json").stdout)
    assert [(u["name"], u["disabled"], u["has_password"]) for u in listed] == [
        ("admin", False, True), ("lena", True, True),
    ]  # fmt: skip
    refused = cli("cases", "list", "--as", "lena", code=1)
    assert refused.stderr.strip() == "tradewatch: lena is disabled and may not act"


def test_silences_are_in_the_audit_trail(settings: Settings, tmp_path: Path) -> None:
    cli = Cli(base_env(settings, tmp_path))
    silence_add = (
        "silence",
        "add",
        "--match",
        "severity=low",
        "--for",
        "1h",
        "--by",
        "kim",
        "--reason",
        "drill",
    )
    # Before the store of record exists (no records stage ever ran here) a silence only says its id.
    first = cli(*silence_add)
    assert first.output.strip() == first.stdout.strip()
    assert not (tmp_path / "data" / "tradewatch.db").exists()
    cli("users", "add", "rita", "--role", "reviewer", "--as", "admin", "--no-password")
    silence_id = cli(*silence_add).stdout.strip()
    cli("silence", "expire", silence_id, "--by", "lee")
    entries = [json.loads(line) for line in cli("audit", "export", "--as", "rita").stdout.splitlines()]
    added, expired = [e for e in entries if e["object_type"] == "silence"]
    assert (added["actor"], added["action"], added["object_id"]) == ("kim", "silence.added", silence_id)
    assert added["after"]["matchers"] == {"severity": "low"}
    assert added["after"]["reason"] == "drill"
    assert (expired["actor"], expired["action"]) == ("lee", "silence.expired")
    assert expired["before"]["until"] > expired["after"]["until"]


def test_cases_from_the_command_line(settings: Settings, tmp_path: Path, database_url: str) -> None:
    env = base_env(settings, tmp_path) | {"TRADEWATCH_DATABASE_URL": database_url}
    cli = Cli(env)
    refused = cli("cases", "list", "--as", "admin", code=2)
    every = ", ".join(f"{n:04d}" for n in range(1, int(head()) + 1))
    assert f"lacks migrations {every}: run `tradewatch db upgrade` first" in refused.stderr
    upgraded = cli("db", "upgrade")
    assert f"migrated from an empty database to {head()}" in upgraded.stdout
    assert "one-time password" in upgraded.stderr
    assert f"up to date at {head()}" in cli("db", "upgrade").stdout
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery staple\n")
    for name, role in [("alice", "analyst"), ("rita", "reviewer"), ("vera", "viewer")]:
        added = cli("users", "add", name, "--role", role, "--as", "admin", "--password-file", str(secret))
        assert added.stdout.strip() == f"user {name} added as {role}"
    no_role = cli("users", "add", "eve", "--role", "analyst", "--as", "alice", "--no-password", code=1)
    assert (
        no_role.stderr.strip()
        == "tradewatch: alice is an analyst: adding a user needs the admin role or above"
    )
    seed(database_url)

    listed = json.loads(cli("cases", "list", "--as", "vera", "--json").stdout)
    assert len(listed) == len(sample_alerts())
    case = next(c for c in listed if c["report_id"] == SHIPYARD)
    cid = str(case["id"])
    assert (case["severity"], case["state"], case["assignee"]) == ("critical", "open", None)
    table = cli("cases", "list", "--as", "vera", "--severity", "critical", "--state", "open").stdout
    assert table.splitlines()[0].split() == [
        "id",
        "severity",
        "state",
        "due",
        "assignee",
        "report",
        "headline",
    ]
    assert len(table.splitlines()) == 1 + sum(1 for c in listed if c["severity"] == "critical")
    assert cli("cases", "list", "--as", "vera", "--state", "shut", code=1).stderr.startswith(
        "tradewatch: 'shut' is not a case state"
    )

    assert cli("cases", "assign", cid, "alice", "--as", "alice").stdout.strip() == (
        f"case {cid} assigned: in review, assigned to alice"
    )
    cli("cases", "comment", cid, "-", "--as", "alice", stdin="The yard is a repair yard in Rason.\n")
    no_outcome = cli("cases", "close", cid, "--reason", "x", "--as", "alice", code=1)
    assert no_outcome.stderr.strip() == (
        "tradewatch: a case is closed with an outcome: violation, false_positive, not_relevant, escalated, reported"
    )
    closed = cli(
        "cases", "close", cid, "--outcome", "false_positive", "--reason", "a repair yard", "--as", "alice"
    )
    assert (
        closed.stdout.splitlines()[0]
        == f"case {cid} closed: closed, awaiting approval (false positive), assigned to alice"
    )
    own = cli("cases", "approve", cid, "--as", "alice", code=1)
    assert "approving a close needs the reviewer role" in own.stderr
    cli("cases", "approve", cid, "--as", "rita", "--note", "registry checked")
    unknown = cli("cases", "show", "999999", "--as", "vera", code=1)
    assert unknown.stderr.strip() == "tradewatch: there is no case 999999"
    shown = cli("cases", "show", cid, "--as", "vera").stdout
    print(shown)  # the README's example comes from here
    for expected in (
        f"case {cid}: ",
        "  state      closed as false positive, assigned to alice",
        "  severity   critical",
        f"  report     {SHIPYARD} from sample, reported 2026-03-06",
        "findings (",
        "items:",
        "decisions:",
        "'a repair yard'; approved by rita",
        "comments:",
        "alice: The yard is a repair yard in Rason.",
        "history:",
        "records case.opened",
        "alice case.assigned: state open -> in_review; assignee - -> alice",
        "alice case.closed: state in_review -> awaiting_approval; outcome - -> false_positive",
        "rita case.approved: state awaiting_approval -> closed",
    ):
        assert expected in shown, expected
    detail = json.loads(cli("cases", "show", cid, "--as", "vera", "--json").stdout)
    assert detail["state"] == "closed"
    assert detail["case"]["report_id"] == SHIPYARD
    reopened = cli("cases", "reopen", cid, "--as", "alice", "--reason", "the panel named the yard")
    assert reopened.stdout.strip() == f"case {cid} reopened: in review, assigned to alice"

    # Screening exceptions, kept and published for the rules stage.
    kept = cli("screening", "except", "Rason Repair Yard Co.", "--entry", "KPe.001", "--reason",
               "a different yard", "--until", "180d", "--case", cid, "--as", "rita").stdout  # fmt: skip
    assert kept.startswith("screening exception 1: 'Rason Repair Yard Co.' is not KPe.001, until ")
    assert "published: 1 exceptions in force" in kept
    assert (
        "is not KPe.001: a different yard (rita, case"
        in cli("screening", "exceptions", "--as", "vera").stdout
    )

    # The trail: intact, exported, and a change made behind its back is named.
    assert cli("audit", "verify").stdout.startswith("the audit chain is intact: ")
    out = tmp_path / "audit.csv"
    cli("audit", "export", "--as", "rita", "--format", "csv", "--out", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0]["action"] == "user.added"
    assert rows[-1]["actor"] == "rita"
    lines = cli(
        "audit", "export", "--as", "rita", "--since", "2000-01-01", "--until", "2999-12-31"
    ).stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert (
        "exporting the audit trail needs the reviewer role"
        in cli("audit", "export", "--as", "alice", code=1).stderr
    )
    tamper(database_url, seq=5)
    broken = cli("audit", "verify", code=1)
    assert broken.stdout.startswith("the audit chain is broken at entry 5: entry 5 (")


def tamper(url: str, seq: int) -> None:
    async def go() -> None:
        store = Store(url)
        try:
            async with store.engine.begin() as conn:
                on = " ON audit" if store.dialect == "postgresql" else ""
                await conn.execute(text(f"DROP TRIGGER audit_append_only_update{on}"))
                await conn.execute(text("UPDATE audit SET actor = 'someone-else' WHERE seq = :s"), {"s": seq})
        finally:
            await store.dispose()

    asyncio.run(go())


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_to_stdout_is_the_file_a_regulator_gets(
    settings: Settings, tmp_path: Path, fmt: str
) -> None:
    cli = Cli(base_env(settings, tmp_path))
    cli("users", "add", "rita", "--role", "reviewer", "--as", "admin", "--no-password")
    body = cli("audit", "export", "--as", "rita", "--format", fmt).stdout
    if fmt == "jsonl":
        entries = [json.loads(line) for line in body.splitlines()]
    else:
        entries = list(csv.DictReader(io.StringIO(body)))
        for e in entries:
            e["after"] = json.loads(e["after"])
    assert [e["action"] for e in entries] == ["user.added", "user.added"]
    assert entries[1]["after"] == {"name": "rita", "password": False, "role": "reviewer"}
