"""Rules over time (ElastAlert's frequency and new_term): pending alerts, decisions, settling.

The engine stays pure: for a rule over time it returns a :class:`Pending` (the alert it would
become, and the state question to ask). Whoever keeps the state answers with a
:class:`Decision` - the rules stage from Redis (``services/rules/state.py``), ``rules test``
from :class:`MemoryState` - and :func:`settle` turns the pair into an alert or nothing.

Both state keepers follow the same contract, so ``rules test`` predicts what production does:

- frequency: a report counts once per rule and group, however often it is delivered (the
  decision is remembered per report id for the window and replayed on a redelivery); events
  older than ``window`` drop out; on reaching ``count`` the alert fires and the count restarts.
- new_term: a value is new the first time the rule sees it, and stays new for the report that
  introduced it (so that report's redelivery yields the same alert), never for another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


def frequency_pending(frequency: Frequency, ids: tuple[str, str], build: AlertBuilder, group: str) -> Pending:
    """``ids``: the rule's and the report's."""
    return Pending("frequency", *ids, build, group=group, count=frequency.count, window=frequency.window)


def new_term_pending(
    new_term: NewTerm, ids: tuple[str, str], build: AlertBuilder, terms: list[str]
) -> Pending:
    return Pending("new_term", *ids, build, group=new_term.field, terms=tuple(terms))


def settle(pending: Pending, decision: Decision) -> Alert | None:
    """The alert with the state's reason added to its evidence, or None when it does not fire."""
    if not decision.fire:
        return None
    if pending.kind == "frequency":
        per = f" with {pending.group}" if pending.group else ""
        listed = list(decision.reports[-MAX_LISTED_REPORTS:])
        more = len(decision.reports) - len(listed)
        names = ", ".join(listed) + (f" and {more} more" if more > 0 else "")
        reason = (
            f"{decision.count} matching reports{per} within {duration_text(pending.window)} "
            f"(threshold {pending.count}): {names}"
        )
    else:
        reason = f"first time seen by this rule: {pending.group} {', '.join(decision.new_terms)}"
    return pending.build([reason])


def duration_text(seconds: float) -> str:
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class _Window:
    events: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)


@dataclass
class MemoryState:
    """The state contract in memory, for ``rules test`` and for checking the Redis scripts."""

    windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    terms: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def decide(self, pending: Pending, at: datetime) -> Decision:
        if pending.kind == "frequency":
            return self._frequency(pending, millis(at))
        known = self.terms.setdefault((pending.rule_id, pending.group), {})
        new = []
        for term in pending.terms:
            owner = known.setdefault(term, pending.report_id)
            if owner == pending.report_id:
                new.append(term)
        return Decision(fire=bool(new), new_terms=tuple(new))

    def _frequency(self, pending: Pending, now: int) -> Decision:
        w = self.windows.setdefault((pending.rule_id, pending.group), _Window())
        rid = pending.report_id
        if rid in w.decisions:
            return w.decisions[rid]
        cutoff = now - int(pending.window * 1000)
        for old in [r for r, t in w.seen.items() if t <= cutoff]:
            del w.seen[old]
            w.decisions.pop(old, None)
        w.events = {r: t for r, t in w.events.items() if t > cutoff}
        w.events[rid] = now
        w.seen[rid] = now
        n = len(w.events)
        if n >= pending.count:
            ordered = tuple(r for r, _ in sorted(w.events.items(), key=lambda e: (e[1], e[0])))
            decision = Decision(True, n, ordered)
            w.events.clear()
        else:
            decision = Decision(False, n)
        w.decisions[rid] = decision
        return decision
