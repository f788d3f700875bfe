"""The store of record against SQLite and PostgreSQL: migrations, the audit chain, export, retention."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.casework import trail, users
from services.casework.workflow import Casework
from services.store import Store, audit, migrate
from services.store.models import Base


async def test_migrations_run_once_and_match_the_models(store: Store) -> None:
    assert await migrate.pending(store) == []
    before, after = await migrate.upgrade(store)  # again: nothing to do
    assert before == after == migrate.head()

    def differences(connection: object) -> list[object]:
        context = MigrationContext.configure(connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with store.engine.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == []


async def test_two_processes_migrating_at_once_migrate_once(database_url: str) -> None:
    first, second = Store(database_url), Store(database_url)
    try:
        results = await asyncio.gather(migrate.upgrade(first), migrate.upgrade(second))
        assert sorted(r[0] or "" for r in results) == ["", migrate.head()]
        assert await migrate.pending(first) == []
    finally:
        await first.dispose()
        await second.dispose()


async def _append(store: Store, n: int, actor: str = "tester") -> None:
    for i in range(n):
        async with store.writing() as session:
            await audit.append(session, actor, "test.step", "thing", i, before={"n": i}, after={"n": i + 1})


async def _verify(store: Store) -> audit.Verification:
    async with store.reading() as session:
        return await audit.verify(session)


async def test_the_chain_verifies_and_each_entry_holds_the_previous_hash(store: Store) -> None:
    assert (await _verify(store)).summary() == "the audit trail is empty: nothing to verify"
    await _append(store, 5)
    result = await _verify(store)
    assert result.ok
    assert result.checked == 5
    assert (result.first, result.last) == (1, 5)
    async with store.reading() as session:
        rows = [audit.row(e) async for e in audit.entries(session)]
    assert rows[0]["prev_hash"] == audit.GENESIS
    for earlier, later in itertools.pairwise(rows):
        assert later["prev_hash"] == earlier["hash"]
    # The hash is SHA-256 over the canonical JSON of the entry with the previous hash.
    third = rows[2]
    assert third["hash"] == audit.entry_hash(third, third["prev_hash"])


async def test_entries_cannot_be_changed_or_deleted_through_sql(store: Store) -> None:
    await _append(store, 2)
    for statement in ("UPDATE audit SET actor = 'mallory' WHERE seq = 1", "DELETE FROM audit WHERE seq = 2"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with store.engine.begin() as conn:
                await conn.execute(text(statement))
    assert (await _verify(store)).ok


async def _lift_guards(store: Store) -> None:
    """What someone tampering with the database would have to do first."""
    async with store.engine.begin() as conn:
        on = " ON audit" if store.dialect == "postgresql" else ""
        await conn.execute(text(f"DROP TRIGGER audit_append_only_update{on}"))
        await conn.execute(text(f"DROP TRIGGER audit_append_only_delete{on}"))


async def test_verify_names_the_first_entry_changed_with_raw_sql(store: Store) -> None:
    await _append(store, 6)
    await _lift_guards(store)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE audit SET after = :v WHERE seq = 4"), {"v": '{"n":99}'})
    result = await _verify(store)
    assert not result.ok
    assert result.broken == 4
    assert result.summary().startswith("the audit chain is broken at entry 4: entry 4 (")
    assert "its content does not match its hash" in result.summary()


async def test_verify_names_a_rehashed_entry_by_the_one_after_it(store: Store) -> None:
    # A forger who rewrites an entry and recomputes its hash breaks the link to the next one.
    await _append(store, 5)
    await _lift_guards(store)
    async with store.reading() as session:
        rows = {e.seq: e for e in [e async for e in audit.entries(session)]}
    forged = {**audit.row(rows[2]), "actor": "mallory"}
    forged["before"], forged["after"] = json.dumps(forged["before"]), json.dumps(forged["after"])
    new_hash = audit.entry_hash(forged, rows[2].prev_hash)
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit SET actor = 'mallory', hash = :h WHERE seq = 2"), {"h": new_hash}
        )
    result = await _verify(store)
    assert result.broken == 3
    assert "does not follow entry 2" in str(result.problem)


async def test_verify_names_a_deleted_entry_and_a_cut_tail(store: Store) -> None:
    await _append(store, 5)
    await _lift_guards(store)
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit WHERE seq = 5"))
    result = await _verify(store)
    assert (result.broken, result.ok) == (5, False)
    assert "later entries were deleted" in str(result.problem)
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit WHERE seq = 2"))
    result = await _verify(store)
    assert result.broken == 2
    assert "entry 2 is missing" in str(result.problem)


async def test_concurrent_writers_take_turns_on_the_chain(database_url: str) -> None:
    # Several engines (as several processes would have) appending at once: no seq twice, no gap.
    stores = [Store(database_url) for _ in range(4)]
    try:
        await migrate.upgrade(stores[0])
        await asyncio.gather(*(_append(s, 10, actor=f"writer-{i}") for i, s in enumerate(stores)))
        result = await _verify(stores[0])
        assert result.ok, result.summary()
        assert result.checked == 40
    finally:
        for s in stores:
            await s.dispose()


async def test_export_as_json_lines_and_csv_for_a_period(store: Store) -> None:
    admin, _ = await users.bootstrap_admin(store) or ("", "")
    await users.add_user(store, admin, "rita", "reviewer", None)
    await _append(store, 3)
    lines = [line async for line in trail.export(store, "rita", None, None, "jsonl")]
    rows = [json.loads(line) for line in lines]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["action"] == "user.added"
    assert rows[0]["after"]["first_admin"] is True
    assert set(rows[0]) == {"seq", "at", "actor", "action", "object_type", "object_id", "before", "after",
                            "prev_hash", "hash"}  # fmt: skip
    # A period: nothing before it, nothing from its end on.
    future = datetime.now(UTC) + timedelta(days=1)
    assert [line async for line in trail.export(store, "rita", future, None, "jsonl")] == []
    assert [line async for line in trail.export(store, "rita", None, rows[0]["at"] and datetime.fromisoformat(rows[1]["at"]), "jsonl")] == lines[:1]  # fmt: skip
    text_csv = "".join([line async for line in trail.export(store, "rita", None, None, "csv")])
    table = list(csv.DictReader(io.StringIO(text_csv)))
    # The exports themselves are in the trail too, each after the one before it.
    assert [int(r["seq"]) for r in table][:5] == [1, 2, 3, 4, 5]
    assert table[-1]["action"] == "audit.exported"
    assert json.loads(table[2]["after"]) == {"n": 1}
    assert (await _verify(store)).ok


async def test_nothing_is_purged_before_its_retention_and_the_rest_still_verifies(store: Store) -> None:
    admin, _ = await users.bootstrap_admin(store) or ("", "")
    await _append(store, 4)
    ten_years = 3653 * 86_400.0
    kept = await trail.purge(store, admin, ten_years)
    assert (kept.entries, kept.cases) == (0, 0)
    async with store.reading() as session:
        assert await audit.count(session) == 6  # 5 and the purge's own entry
    # Eleven years on, everything written so far is past retention.
    later = await trail.purge(store, admin, ten_years, now=datetime.now(UTC) + timedelta(days=11 * 366))
    assert later.entries == 6
    assert later.anchor == 6
    result = await _verify(store)
    assert result.ok, result.summary()
    assert (result.first, result.last) == (7, 7)
    await _append(store, 2)
    assert (await _verify(store)).checked == 3


async def test_a_closed_case_is_kept_for_its_retention(store: Store) -> None:
    from services.casework.records import record_alerts
    from tests.dbfixtures import sample_alerts

    admin, _ = await users.bootstrap_admin(store) or ("", "")
    work = Casework(store)
    async with store.writing() as session:
        await record_alerts(session, next(iter(sample_alerts().values())), work.due)
    (case,) = await work.list(admin)
    await work.close(admin, case.id, "violation", "confirmed by customs")
    assert (await trail.purge(store, admin, 86_400.0)).cases == 0
    assert (await trail.purge(store, admin, 86_400.0, now=datetime.now(UTC) + timedelta(days=2))).cases == 1
    assert await work.list(admin) == []


async def test_an_export_cut_short_is_recorded_as_such(store: Store) -> None:
    import contextlib

    admin, _ = await users.bootstrap_admin(store) or ("", "")
    await _append(store, 3)
    async with contextlib.aclosing(trail.export(store, admin, None, None, "jsonl")) as lines:
        async for _ in lines:
            break  # the reader went away after the first line
    async with store.reading() as session:
        last = [audit.row(e) async for e in audit.entries(session)][-1]
    assert last["action"] == "audit.exported"
    assert (last["after"]["entries"], last["after"]["complete"]) == (1, False)
