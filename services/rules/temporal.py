"""Rules over time (ElastAlert's frequency and new_term): pending alerts, decisions, settling.

The engine stays pure: for a rule over time it returns a :class:`Pending` (the alert it would
become, and the state question to ask). Whoever keeps the state answers with a
:class:`Decision` - the rules stage from Redis (``services/rules/state.py``), ``rules test`` and
backtests from :class:`MemoryState` - and :func:`settle` turns the pair into an alert or nothing.

Event time. Each report counts at its own time, its *event time* (``services.wire.event_time``:
its report date, else when it reached the report stream; the report schema has no shipment period
yet, and the customs tables' sources put the trade period in the report date), never at the rules
stage's clock. Both state keepers follow the same contract, so ``rules test`` and backtests
predict what production does:

- frequency: a report counts once per rule and group, however often it is delivered (the
  decision is remembered per report id and replayed on a redelivery). A report at event time
  ``t`` fires when some window of length ``window`` that contains ``t`` holds ``count`` counted
  reports not yet used by an alert, itself included (of the fullest such windows, the earliest).
  Fed in event-time order this is the plain sliding window ``(t - window, t]``; a late report
  also completes a window with reports later than itself, so reports that arrive out of order
  make the same alerts as in order whenever no alert fired in between. The reports of a window
  that fired are used up (the count restarts). The alert names every report it counted and its
  event date.
- The state keeps what may still matter: the reports that *arrived* within ``window + horizon``
  of the latest arrival the group has seen (arrival: when the report reached the report stream;
  a backtest, replaying in event-time order, takes each report's event time as its arrival).
  Older ones are forgotten, so a backfill of any age counts with the reports that arrived
  around it, and the state of a group stays as small as its traffic over that span.
- new_term: a value is new for the report with the earliest event time that carries it, as far
  as the state knows when the report arrives (ties: the smaller report id). A report that brings
  a value first is its owner; a later-arriving report with an earlier event time takes the value
  over and fires too; its redelivery yields the same alert, another report's never.
- backfill: a report whose event time is older than ``horizon`` (``TRADEWATCH_BACKFILL_HORIZON``)
  when it arrives counts like any other, but an alert it fires itself is marked ``backfill``: the
  records stage records it as a case, backtests show it, the notifier sends nothing. A window it
  only helped fill and a later report fired is not backfill.
- Replay: the same reports in the same order give the same decisions (no clock is read; only the
  event times, the receipt times and the order); a redelivered report gets its stored decision.
  A backtest replays the archive in event-time order, so its decisions are those of an in-order
  arrival.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from schemas.alert import Alert
from schemas.rules import Frequency, NewTerm

MAX_LISTED_REPORTS = 20
"""Report ids named in a frequency alert's evidence; the count is always exact."""


AlertBuilder = Callable[[Sequence[str]], Alert]
"""Builds a pending rule's alert, with the state's reasons appended to its evidence."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A rule over time that held on a report: the alert it becomes if the state says so.

    The alert is built only then (``build``, given the state's reason): most reports only add
    to a count or repeat a known term, and building an explained alert costs more than
    deciding whether it fires.
    """

    kind: Literal["frequency", "new_term"]
    rule_id: str
    report_id: str
    build: AlertBuilder = field(compare=False, repr=False)
    group: str = ""
    """frequency: the ``per`` values (``crossing=dandong sinuiju``); new_term: the field name."""
    terms: tuple[str, ...] = ()
    count: int = 0
    window: float = 0.0

    def describe(self) -> str:
        if self.kind == "frequency":
            per = f" with {self.group}" if self.group else ""
            return (
                f"frequency: fires at {self.count} matching reports{per} within {duration_text(self.window)}"
            )
        return f"new_term: fires on a {self.group} not seen before ({', '.join(self.terms)})"


@dataclass(frozen=True, slots=True)
class Decision:
    fire: bool
    count: int = 0
    """frequency: matching reports in the window, this one included."""
    reports: tuple[str, ...] = ()
    """frequency: the reports that made the count, oldest first."""
    new_terms: tuple[str, ...] = ()
    times: tuple[int, ...] = ()
    """frequency: the event time (ms) of each of ``reports``."""


DEFAULT_HORIZON = 30 * 86_400.0
"""Seconds: a report whose event time is older than this when it arrives is a backfill."""


def is_backfill(event: datetime, received: datetime, horizon: float) -> bool:
    """The report arrived more than ``horizon`` seconds after its own time."""
    return (received - event).total_seconds() > horizon


def frequency_pending(frequency: Frequency, ids: tuple[str, str], build: AlertBuilder, group: str) -> Pending:
    """``ids``: the rule's and the report's."""
    return Pending("frequency", *ids, build, group=group, count=frequency.count, window=frequency.window)


def new_term_pending(
    new_term: NewTerm, ids: tuple[str, str], build: AlertBuilder, terms: list[str]
) -> Pending:
    return Pending("new_term", *ids, build, group=new_term.field, terms=tuple(terms))


def settle(pending: Pending, decision: Decision, backfill: bool = False) -> Alert | None:
    """The alert with the state's reason added to its evidence, or None when it does not fire.
    ``backfill``: the report that fired it arrived past the horizon (see the module's notes)."""
    if not decision.fire:
        return None
    if pending.kind == "frequency":
        per = f" with {pending.group}" if pending.group else ""
        named = [
            f"{rid} ({day(t)})" if t is not None else rid
            for rid, t in zip(decision.reports, _padded(decision.times, len(decision.reports)), strict=True)
        ]
        listed = named[-MAX_LISTED_REPORTS:]
        more = len(named) - len(listed)
        names = ", ".join(listed) + (f" and {more} more" if more > 0 else "")
        reason = (
            f"{decision.count} matching reports{per} within {duration_text(pending.window)} "
            f"(threshold {pending.count}): {names}"
        )
    else:
        reason = f"first time seen by this rule: {pending.group} {', '.join(decision.new_terms)}"
    reasons = [reason]
    if backfill:
        reasons.append("backfill: the report arrived after the backfill horizon; recorded, not notified")
    alert = pending.build(reasons)
    return alert.model_copy(update={"backfill": True}) if backfill else alert


def _padded(times: tuple[int, ...], n: int) -> list[int | None]:
    return [*times, *([None] * (n - len(times)))][:n]


def day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def duration_text(seconds: float) -> str:
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def fullest_window(events: list[tuple[int, str]], t: int, window: int) -> tuple[int, int]:
    """``(start, end)`` indexes (end exclusive) in ``events`` (sorted by time, then id) of the
    earliest of the fullest spans shorter than ``window`` that contain time ``t``."""
    best = (0, 0)
    j = 0
    for i, (start, _) in enumerate(events):
        if start > t:
            break
        if start <= t - window:
            continue
        j = max(j, i)
        while j < len(events) and events[j][0] < start + window:
            j += 1
        if j - i > best[1] - best[0]:
            best = (i, j)
    return best


@dataclass
class _Window:
    events: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)


@dataclass
class MemoryState:
    """The state contract in memory, for ``rules test``, backtests and checking the Redis scripts."""

    horizon: float = DEFAULT_HORIZON
    windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    terms: dict[tuple[str, str], dict[str, tuple[str, int]]] = field(default_factory=dict)

    def decide(self, pending: Pending, at: datetime, arrived: datetime | None = None) -> Decision:
        """``at``: the report's event time; ``arrived``: when it reached the stream (default ``at``)."""
        if pending.kind == "frequency":
            return self._frequency(pending, millis(at), millis(arrived or at))
        known = self.terms.setdefault((pending.rule_id, pending.group), {})
        t = millis(at)
        new = []
        rid = pending.report_id
        for term in pending.terms:
            owner = known.get(term)
            if owner is None or owner[0] == rid or (t, rid) < (owner[1], owner[0]):
                known[term] = (rid, t) if owner is None or owner[0] != rid else owner
                new.append(term)
        return Decision(fire=bool(new), new_terms=tuple(new))

    def _frequency(self, pending: Pending, t: int, arrived: int) -> Decision:
        w = self.windows.setdefault((pending.rule_id, pending.group), _Window())
        rid = pending.report_id
        if rid in w.decisions:
            return w.decisions[rid]
        window = int(pending.window * 1000)
        mark = max([arrived, *w.seen.values()])
        cutoff = mark - window - int(self.horizon * 1000)
        for old in [r for r, a in w.seen.items() if a <= cutoff]:
            del w.seen[old]
            w.decisions.pop(old, None)
            w.events.pop(old, None)
        w.events[rid] = t
        w.seen[rid] = arrived
        near = sorted((at, r) for r, at in w.events.items() if t - window < at < t + window)
        start, end = fullest_window(near, t, window)
        n = end - start
        if n >= pending.count:
            used = near[start:end]
            decision = Decision(True, n, tuple(r for _, r in used), times=tuple(at for at, _ in used))
            for _, r in used:
                del w.events[r]
        else:
            decision = Decision(False, n)
        w.decisions[rid] = decision
        return decision
