"""The case workflow against SQLite and PostgreSQL: alerts into cases, steps, four eyes, roles,
refusals that change nothing, users and logins, screening exceptions; every step in the audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select

from schemas.alert import Alert, Severity
from services.casework import screening, users
from services.casework.access import AccessRefused, Refused
from services.casework.records import record_alerts
from services.casework.workflow import CaseFilter, Casework
from services.sanctions.store import SanctionsStore
from services.settings import Settings
from services.store import Store, audit
from services.store.models import AuditEntry, CaseState, Outcome
from tests.dbfixtures import sample_alerts

SHIPYARD = "sample-2026-03-rason-shipyard"  # critical
FARM = "sample-2026-03-dandong-farm"  # high


@pytest.fixture
async def team(store: Store) -> Casework:
    """A store with an admin, two analysts, two reviewers and a viewer, and the sample cases."""
    made = await users.bootstrap_admin(store)
    assert made is not None
    assert made[0] == "admin"
    for name, role in [("alice", "analyst"), ("andy", "analyst"), ("rita", "reviewer"), ("rob", "reviewer"),
                       ("vera", "viewer")]:  # fmt: skip
        await users.add_user(store, "admin", name, role, None)
    work = Casework(store)
    async with store.writing() as session:
        await record_alerts(session, [a for group in sample_alerts().values() for a in group], work.due)
    return work


async def case_of(work: Casework, report_id: str) -> int:
    return next(c.id for c in await work.list("vera") if c.report_id == report_id)


async def trail_of(store: Store) -> list[dict[str, object]]:
    async with store.reading() as session:
        return [audit.row(e) async for e in audit.entries(session)]


async def snapshot(store: Store) -> tuple[int, str]:
    """The number of audit entries and the chain's head: equal before and after means nothing changed."""
    async with store.reading() as session:
        n = await session.scalar(select(func.count()).select_from(AuditEntry))
        head = await session.scalar(select(AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1))
    return int(n or 0), str(head)


# --- alerts into cases


async def test_one_case_per_report_due_by_its_severity(team: Casework) -> None:
    found = await team.list("vera")
    assert sorted(c.report_id for c in found) == sorted(sample_alerts())
    shipyard = next(c for c in found if c.report_id == SHIPYARD)
    farm = next(c for c in found if c.report_id == FARM)
    assert (shipyard.severity, shipyard.state) == (Severity.CRITICAL, CaseState.OPEN)
    assert shipyard.findings == len(sample_alerts()[SHIPYARD])
    assert shipyard.due_at - shipyard.opened_at == timedelta(days=1)
    assert farm.due_at - farm.opened_at == timedelta(days=3)
    assert found[0].severity == Severity.CRITICAL  # the worst first
    assert [c.report_id for c in await team.list("vera", CaseFilter(severities=[Severity.HIGH]))] == [
        c.report_id for c in found if c.severity == Severity.HIGH
    ]
    assert [c.id for c in await team.list("vera", CaseFilter(crossing="dandong-sinuiju"))] == [
        c.id for c in found if c.crossing == "Dandong-Sinuiju"
    ]
    assert await team.list("vera", CaseFilter(since=datetime.now(UTC) + timedelta(hours=1))) == []


async def test_an_inbox_page_filters_by_category_and_rule_sorts_pages_and_counts(team: Casework) -> None:
    everything = await team.page("vera")
    assert everything.total == len(sample_alerts()) == sum(everything.by_state.values())
    radio = await team.page("vera", CaseFilter(category="radio-telecom"))
    assert sorted(c.report_id for c in radio.cases) == [
        "sample-2026-03-hyesan-medical-radio",
        "sample-2026-03-ko-ledger",
    ]
    # One category matches exactly: "machine-tools" is not "tools", "dual-use" not "use".
    assert (await team.page("vera", CaseFilter(category="tools"))).total == 0
    assert (await team.page("vera", CaseFilter(category="dual_use"))).total == 0
    shipyard_rule = await team.page("vera", CaseFilter(rule="shipyard-equipment"))
    assert sorted(c.report_id for c in shipyard_rule.cases) == [SHIPYARD, "sample-2026-03-zh-ledger"]
    both = await team.page("vera", CaseFilter(rule="radio-telecom", severities=[Severity.CRITICAL]))
    assert [c.report_id for c in both.cases] == ["sample-2026-03-ko-ledger"]
    first = await team.page("vera", CaseFilter(limit=3))
    rest = await team.page("vera", CaseFilter(limit=3, offset=3))
    assert [c.id for c in first.cases + rest.cases] == [c.id for c in everything.cases][:6]
    assert first.total == rest.total == everything.total
    newest = await team.page("vera", CaseFilter(order="opened"))
    assert [c.id for c in newest.cases] == sorted((c.id for c in everything.cases), reverse=True)
    await team.assign("alice", (await case_of(team, FARM)), "alice")
    counted = await team.page("vera", CaseFilter(states=[CaseState.OPEN]))
    assert counted.by_state == {CaseState.OPEN: everything.total - 1}
    with pytest.raises(Refused, match="is not a sort order"):
        await team.page("vera", CaseFilter(order="random"))


async def test_the_same_alerts_again_change_nothing(team: Casework) -> None:
    before = await snapshot(team.store)
    async with team.store.writing() as session:
        done = await record_alerts(session, [a for g in sample_alerts().values() for a in g], team.due)
    assert (done.opened, done.attached, done.repeated) == (
        0,
        0,
        sum(len(g) for g in sample_alerts().values()),
    )
    assert await snapshot(team.store) == before


def later_alert(alert: Alert, rule: str, severity: Severity = Severity.CRITICAL) -> Alert:
    return alert.model_copy(update={"alert_id": f"a-later-{rule}", "rule_id": rule, "severity": severity})


async def test_a_new_alert_for_a_closed_case_attaches_visibly_and_the_case_stays_closed(
    team: Casework,
) -> None:
    farm = await case_of(team, FARM)
    await team.close("alice", farm, "violation", "confirmed with the customs record")
    async with team.store.writing() as session:
        done = await record_alerts(
            session, [later_alert(sample_alerts()[FARM][0], "un-listed-party")], team.due
        )
    assert (done.attached, done.after_close) == (1, 1)
    detail = await team.show("vera", farm)
    assert detail.summary.state is CaseState.CLOSED  # reopening is a person's decision
    assert detail.summary.findings_after_close == 1
    assert detail.after_close == ["a-later-un-listed-party"]
    assert detail.summary.severity is Severity.CRITICAL
    added = detail.history[-1]
    assert added["action"] == "case.findings_added"
    assert added["actor"] == "records"
    assert added["before"]["severity"] == "high"
    assert added["after"]["severity"] == "critical"
    assert added["after"]["state"] == "closed"
    assert added["after"]["alert_ids"] == ["a-later-un-listed-party"]
    reopened = await team.reopen("andy", farm, "a listed party appeared after the close")
    assert (reopened.state, reopened.findings_after_close, reopened.reopened) == (CaseState.OPEN, 0, 1)
    assert reopened.due_at - datetime.now(UTC) > timedelta(hours=23)  # due again, as a critical case


async def test_a_worse_alert_brings_the_due_date_forward(team: Casework) -> None:
    farm = await case_of(team, FARM)
    before = (await team.show("vera", farm)).summary
    async with team.store.writing() as session:
        await record_alerts(session, [later_alert(sample_alerts()[FARM][0], "surge")], team.due)
    after = (await team.show("vera", farm)).summary
    assert after.severity is Severity.CRITICAL
    assert after.due_at < before.due_at


# --- the workflow and four eyes


async def test_assign_comment_close_approve_each_in_the_audit(team: Casework) -> None:
    case = await case_of(team, SHIPYARD)
    assigned = await team.assign("alice", case, "andy")
    assert (assigned.state, assigned.assignee) == (CaseState.IN_REVIEW, "andy")
    await team.comment("andy", case, "The importer is a fishing cooperative, not the listed yard.")
    closed = await team.close("andy", case, "false positive", "the yard named is a different company")
    # A critical case closed as a false positive needs a second person.
    assert closed.state is CaseState.AWAITING_APPROVAL
    assert closed.outcome is Outcome.FALSE_POSITIVE
    with pytest.raises(Refused, match="closed already|awaiting approval already"):
        await team.close("alice", case, "violation", "again")
    approved = await team.approve("rita", case, "checked the registry")
    assert approved.state is CaseState.CLOSED
    detail = await team.show("vera", case)
    assert [(d.by, d.approved_by) for d in detail.decisions] == [("andy", "rita")]
    assert [c.body for c in detail.comments] == [
        "The importer is a fishing cooperative, not the listed yard."
    ]
    actions = [(h["actor"], h["action"]) for h in detail.history]
    assert actions == [
        ("records", "case.opened"),
        ("alice", "case.assigned"),
        ("andy", "case.commented"),
        ("andy", "case.closed"),
        ("rita", "case.approved"),
    ]
    closing = detail.history[3]
    assert closing["before"]["state"] == "in_review"
    assert closing["after"]["state"] == "awaiting_approval"
    assert closing["after"]["needs_approval"] is True
    assert detail.case.report_id == SHIPYARD
    assert detail.case.findings


async def test_a_violation_or_a_low_case_closes_without_approval(team: Casework) -> None:
    shipyard, farm = await case_of(team, SHIPYARD), await case_of(team, FARM)
    assert (await team.close("alice", shipyard, "violation", "confirmed")).state is CaseState.CLOSED
    assert (await team.close("alice", farm, "reported", "sent to the panel")).state is CaseState.CLOSED
    assert (await team.show("vera", farm)).summary.outcome is Outcome.REPORTED


async def test_the_closer_cannot_approve_their_own_close(team: Casework) -> None:
    case = await case_of(team, SHIPYARD)
    await team.close("rita", case, "not_relevant", "a domestic shipment")
    before = await snapshot(team.store)
    with pytest.raises(Refused, match="rita closed case .*: the approval must come from a second person"):
        await team.approve("rita", case)
    assert await snapshot(team.store) == before  # bad input changes nothing, not even the trail
    assert (await team.approve("rob", case)).state is CaseState.CLOSED


async def test_reopening_a_case_awaiting_approval_withdraws_the_decision(team: Casework) -> None:
    case = await case_of(team, SHIPYARD)
    await team.assign("alice", case, "alice")
    await team.close("alice", case, "false_positive", "looks like a different yard")
    reopened = await team.reopen("rob", case, "the yard is on the list after all")
    assert (reopened.state, reopened.outcome) == (CaseState.IN_REVIEW, None)
    (decision,) = (await team.show("vera", case)).decisions
    assert decision.withdrawn_at is not None
    assert decision.approved_by is None
    with pytest.raises(Refused, match="only a case closed and awaiting approval is approved"):
        await team.approve("rob", case)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            lambda w, c: w.close("alice", c, None, "why"),
            "a case is closed with an outcome: violation, false_positive",
        ),
        (lambda w, c: w.close("alice", c, "dunno", "why"), "'dunno' is not an outcome"),
        (lambda w, c: w.close("alice", c, "violation", " "), "closing a case needs a reason"),
        (lambda w, c: w.close("alice", 99_999, "violation", "why"), "there is no case 99999"),
        (
            lambda w, c: w.comment("alice", c, "x" * 10_001),
            "a comment has at most 10,000 characters; this one has 10,001",
        ),
        (lambda w, c: w.comment("alice", c, "   "), "a comment cannot be empty"),
        (lambda w, c: w.reopen("alice", c, "why"), "only a closed case is reopened"),
        (lambda w, c: w.assign("alice", c, "vera"), "vera is a viewer and cannot work a case"),
        (lambda w, c: w.assign("alice", c, "nobody-here"), "there is no user 'nobody-here'"),
        (lambda w, c: w.show("vera", 424_242), "there is no case 424242"),
    ],
)
async def test_bad_input_is_refused_with_a_sentence_and_changes_nothing(
    team: Casework, step, message
) -> None:  # type: ignore[no-untyped-def]
    case = await case_of(team, SHIPYARD)
    before = await snapshot(team.store)
    with pytest.raises(Refused) as refused:
        await step(team, case)
    assert not isinstance(refused.value, AccessRefused)
    assert message in str(refused.value)
    assert await snapshot(team.store) == before
    assert (await team.show("vera", case)).summary.state is CaseState.OPEN


@pytest.mark.parametrize(
    ("actor", "step", "message"),
    [
        (
            "vera",
            lambda w, c: w.comment("vera", c, "hello"),
            "vera is a viewer: commenting on a case needs the analyst role",
        ),
        ("vera", lambda w, c: w.close("vera", c, "violation", "x"), "closing a case needs the analyst role"),
        (
            "alice",
            lambda w, c: w.approve("alice", c),
            "alice is an analyst: approving a close needs the reviewer role",
        ),
        ("mallory", lambda w, c: w.list("mallory"), "there is no user 'mallory'"),
    ],
)
async def test_a_role_too_low_is_refused_and_recorded(team: Casework, actor, step, message) -> None:  # type: ignore[no-untyped-def]
    case = await case_of(team, SHIPYARD)
    with pytest.raises(AccessRefused, match=message):
        await step(team, case)
    last = (await trail_of(team.store))[-1]
    assert (last["actor"], last["action"]) == (actor, "access.refused")
    assert message in str(last["after"]["reason"])  # type: ignore[index]
    assert (await team.show("vera", case)).summary.state is CaseState.OPEN


async def test_a_disabled_user_may_no_longer_act(team: Casework) -> None:
    await users.disable_user(team.store, "admin", "andy")
    with pytest.raises(AccessRefused, match="andy is disabled"):
        await team.comment("andy", await case_of(team, FARM), "still here?")
    with pytest.raises(Refused, match="andy is disabled"):
        await team.assign("alice", await case_of(team, FARM), "andy")


# --- users and logins


async def test_users_roles_and_the_last_admin(team: Casework) -> None:
    store = team.store
    listed = {u.name: u.role for u in await users.list_users(store, "vera")}
    assert listed == {"admin": "admin", "alice": "analyst", "andy": "analyst", "rita": "reviewer",
                      "rob": "reviewer", "vera": "viewer"}  # fmt: skip
    with pytest.raises(AccessRefused, match="adding a user needs the admin role"):
        await users.add_user(store, "rita", "eve", "admin", None)
    with pytest.raises(Refused, match="there is already a user 'alice'"):
        await users.add_user(store, "admin", "alice", "viewer", None)
    with pytest.raises(Refused, match="'boss' is not a role"):
        await users.add_user(store, "admin", "eve", "boss", None)
    with pytest.raises(Refused, match="cannot be a user name"):
        await users.add_user(store, "admin", "Eve Smith", "viewer", None)
    with pytest.raises(Refused, match="admin is the last admin"):
        await users.disable_user(store, "admin", "admin")
    assert await users.bootstrap_admin(store) is None  # only for a store with no user


async def test_logins_are_checked_with_argon2_and_recorded(team: Casework) -> None:
    store = team.store
    await users.add_user(store, "admin", "lena", "analyst", "a long enough secret")
    async with store.reading() as session:
        from services.store.models import User

        stored = (await session.scalars(select(User).where(User.name == "lena"))).one().password_hash
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "a long enough secret" not in stored
    assert (await users.login(store, "lena", "a long enough secret")).name == "lena"
    for name, password in [("lena", "wrong password here"), ("nobody", "a long enough secret")]:
        with pytest.raises(AccessRefused, match="unknown user or wrong password"):
            await users.login(store, name, password)
    actions = [(e["actor"], e["action"]) for e in await trail_of(store)][-3:]
    assert actions == [("lena", "login"), ("lena", "login.refused"), ("nobody", "login.refused")]
    assert "a long enough secret" not in json.dumps(await trail_of(store))
    with pytest.raises(Refused, match="at least 12 characters"):
        await users.set_password(store, "lena", "lena", "short")
    await users.set_password(store, "lena", "lena", "another long secret")
    assert (await users.login(store, "lena", "another long secret")).must_change_password is False


# --- screening exceptions


async def test_screening_exceptions_kept_published_and_revoked(
    team: Casework, settings: Settings, raw_redis: redis.Redis
) -> None:
    from services import server

    store = team.store
    until = datetime.now(UTC) + timedelta(days=90)
    case = await case_of(team, FARM)
    with pytest.raises(AccessRefused, match="keeping a screening exception needs the reviewer role"):
        await screening.add(store, "alice", "Ryonha Trading Co.", "KPe.016", "a different company", until)
    with pytest.raises(Refused, match="must last into the future"):
        await screening.add(
            store, "rita", "Ryonha Trading Co.", "KPe.016", "x", datetime.now(UTC) - timedelta(days=1)
        )
    kept = await screening.add(
        store, "rita", "Ryonha Trading Co.", "KPe.016", "a different company", until, case
    )
    assert kept.in_force(datetime.now(UTC))
    assert kept.by == "rita"
    detail = await team.show("vera", case)
    assert detail.exceptions[0]["entry"] == "KPe.016"
    assert detail.history[-1]["action"] == "case.exception_added"

    client = server.client(server.resolve(settings))
    try:
        assert await screening.publish(store, client, settings) == 1
        key = SanctionsStore(client, settings).exceptions_key
        (doc,) = raw_redis.hvals(key)
        assert json.loads(doc)["name"] == "Ryonha Trading Co."
        assert json.loads(doc)["by"] == "rita"
        await screening.revoke(store, "rob", kept.id, "the panel listed it after all")
        assert await screening.publish(store, client, settings) == 0
        assert raw_redis.hlen(key) == 0
    finally:
        await client.aclose()
    assert await screening.listed(store, "vera") == []
    (everything,) = await screening.listed(store, "vera", everything=True)
    assert everything.status(datetime.now(UTC)).startswith("revoked")
    assert everything.revoked_by == "rob"
    actions = [e["action"] for e in await trail_of(store)]
    assert actions[-3:] == ["exception.added", "case.exception_added", "exception.revoked"]
