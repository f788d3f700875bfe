"""Event time for rules over time, in memory (the contract in services/rules/temporal.py): each report
counts at its own time, a late report completes the window it belongs to, the state forgets past
the watermark, new terms belong to the earliest report, backfill alerts are marked, and a replay
gives the same decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.report import ImportReport
from services.rules import trial
from services.rules.engine import RuleSet
from services.rules.temporal import MemoryState, Pending, fullest_window, is_backfill
from services.wire import event_time
from tests.helpers import make_report

DAY = timedelta(days=1)
RECEIVED = datetime(2026, 3, 20, tzinfo=UTC)
SURGE = "machinery-surge-by-crossing"
HEADING = "new-machinery-heading"


def lathe(report_id: str, day: str | None, description: str = "lathe") -> ImportReport:
    fields: dict[str, object] = {"crossing": "Dandong-Sinuiju", "items": [{"description": description}]}
    if day is not None:
        fields["reported_at"] = f"{day}T00:00:00Z"
    return make_report(report_id, **fields)


def fired(trials: list[trial.ReportTrial], rule_id: str) -> list[tuple[str, bool]]:
    return [(t.report.report_id, a.backfill) for t in trials for a in t.fired if a.rule_id == rule_id]


def pending(report_id: str, count: int = 3, window_days: float = 7) -> Pending:
    return Pending(
        "frequency", "r", report_id, lambda _: None,  # type: ignore[arg-type,return-value]
        group="g", count=count, window=window_days * 86_400,
    )  # fmt: skip


def test_event_time_is_the_report_date_else_the_receipt() -> None:
    assert event_time(lathe("a", "2026-01-02"), RECEIVED) == datetime(2026, 1, 2, tzinfo=UTC)
    assert event_time(lathe("a", None), RECEIVED) == RECEIVED
    naive = make_report("n", text="lathes", reported_at=datetime(2026, 1, 2))
    assert event_time(naive, RECEIVED) == datetime(2026, 1, 2, tzinfo=UTC)
    assert is_backfill(RECEIVED - 31 * DAY, RECEIVED, 30 * 86_400)
    assert not is_backfill(RECEIVED - 29 * DAY, RECEIVED, 30 * 86_400)


def test_a_late_report_completes_the_window_of_its_own_time(pack: RuleSet) -> None:
    # m3 and m1 arrive first, four days apart; m2, between them, arrives last and completes the week.
    reports = [lathe("m3", "2026-03-12"), lathe("m1", "2026-03-08"), lathe("m2", "2026-03-10")]
    trials = trial.run(reports, pack, RECEIVED)
    assert fired(trials, SURGE) == [("m2", False)]
    (alert,) = [a for a in trials[2].fired if a.rule_id == SURGE]
    assert (
        "3 matching reports with crossing=dandong sinuiju within 1w (threshold 3): "
        "m1 (2026-03-08), m2 (2026-03-10), m3 (2026-03-12)"
    ) in alert.evidence


def test_reports_months_apart_never_make_a_surge_however_they_arrive(pack: RuleSet) -> None:
    # Processing time would have counted these three together: they arrive within a minute.
    reports = [lathe("jan", "2026-01-10"), lathe("feb", "2026-02-10"), lathe("mar", "2026-03-10")]
    assert fired(trial.run(reports, pack, RECEIVED), SURGE) == []


def test_a_backfill_counts_and_its_own_alert_is_marked(pack: RuleSet) -> None:
    reports = [lathe("j1", "2026-01-05"), lathe("j2", "2026-01-06"), lathe("j3", "2026-01-07")]
    trials = trial.run(reports, pack, RECEIVED, horizon=30 * 86_400)
    assert fired(trials, SURGE) == [("j3", True)]
    (alert,) = [a for a in trials[2].fired if a.rule_id == SURGE]
    assert any(e.startswith("backfill:") for e in alert.evidence)
    assert "backfill: recorded as a case, not notified" in trial.render(trials[2])
    # Within the horizon (a longer one), the same reports notify as usual.
    assert fired(trial.run(reports, pack, RECEIVED, horizon=90 * 86_400), SURGE) == [("j3", False)]


def test_a_window_filled_by_a_backfill_and_fired_by_a_fresh_report_is_not_backfill(pack: RuleSet) -> None:
    reports = [lathe("old1", "2026-02-14"), lathe("old2", "2026-02-15"), lathe("new", "2026-02-19")]
    received = [RECEIVED, RECEIVED, datetime(2026, 2, 19, 1, tzinfo=UTC)]
    trials = trial.run(reports, pack, RECEIVED, received=received, horizon=30 * 86_400)
    assert fired(trials, SURGE) == [("new", False)]


def test_a_new_term_belongs_to_the_earliest_report_that_carries_it(pack: RuleSet) -> None:
    reports = [lathe("mar", "2026-03-12"), lathe("mar2", "2026-03-13"), lathe("jan", "2026-01-12")]
    trials = trial.run(reports, pack, RECEIVED)
    # mar brings the heading; jan, earlier, takes it over (a backfill past 30 days); mar2 never.
    assert fired(trials, HEADING) == [("mar", False), ("jan", True)]


def test_the_state_forgets_what_arrived_longer_than_window_and_horizon_before_the_latest() -> None:
    state = MemoryState(horizon=86_400)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    state.decide(pending("a"), t0)
    state.decide(pending("b"), t0 + DAY)
    state.decide(pending("c"), t0 + 30 * DAY)  # arrivals move a month on: a and b are forgotten
    decision = state.decide(pending("d"), t0 + 2 * DAY, arrived=t0 + 30 * DAY)
    assert (decision.fire, decision.count) == (False, 1)
    # A backfill that arrives all at once counts together, however old.
    for rid in ("x", "y"):
        state.decide(pending(rid), t0 - 300 * DAY, arrived=t0 + 30 * DAY)
    assert state.decide(pending("z"), t0 - 299 * DAY, arrived=t0 + 30 * DAY).reports == ("x", "y", "z")


def test_a_redelivery_gets_its_decision_back_and_a_replay_the_same_decisions(pack: RuleSet) -> None:
    reports = [lathe(f"r{i}", f"2026-03-{d:02d}") for i, d in enumerate([9, 3, 12, 5, 4, 11, 10, 2])]
    first = trial.run(reports, pack, RECEIVED)
    again = trial.run(reports, pack, RECEIVED)
    assert [t.line() for t in first] == [t.line() for t in again]
    state = MemoryState()
    once = [state.decide(pending(r), t) for r, t in [("a", RECEIVED), ("b", RECEIVED), ("a", RECEIVED)]]
    assert once[0] == once[2]


@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(1, 10))
def test_the_fullest_window_is_found_like_by_brute_force(days: list[int], width: int) -> None:
    events = sorted((d, f"e{i}") for i, d in enumerate(days))
    t = events[len(events) // 2][0]
    start, end = fullest_window(events, t, width)
    best = max(
        (sum(1 for d, _ in events if s <= d < s + width) for s in range(t - width + 1, t + 1)), default=0
    )
    assert end - start == best
    assert all(events[i][0] - events[start][0] < width for i in range(start, end))
    assert events[start][0] <= t < events[start][0] + width
