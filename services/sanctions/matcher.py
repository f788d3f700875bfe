"""Screening a report: its importer, its exporter, the organisation names in its text, its vessels.

Names in free text are found as runs of capitalised words (``Korea Ryonha Machinery J/V Co.``),
each tried whole and in its shorter spans; Chinese and Korean runs are tried as they stand.
Vessels are the report's own (``vessels``: name and IMO number) and the IMO numbers its text
gives (``IMO 8660313``, ``IMO No. 8660313``, ``IMO: 8660313``); a number with a wrong check digit
is said so in the evidence and never matched.
The work is done once per report (:class:`PartyScreen`, cached) whatever the number of rules
asking; :func:`party_test` turns a rule's ``party:`` condition into evidence a person can check.

Reviewed exceptions (the index's ``exceptions``: a name and a listed entry, who decided, why,
until when) are honoured: such a match holds no condition, and where it alone would have made a
rule fire, the rule is shown as held back with ``screening skipped NAME against ENTRY: exception
by WHO until DATE (WHY)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.report import ImportReport
from schemas.sanctions import PartyCondition, PartyRole, ScreeningException
from services.sanctions.index import PARTY_KINDS, Exceptions, Match, ScreeningIndex
from services.sanctions.normalise import LEGAL_WORDS, WEAK_WORDS, compact, core, fold, key_tokens
from services.sanctions.vessels import find_imo_numbers

SCREEN_FLOOR = 0.75
"""Matches below this score are never kept: no rule or command asks for less."""

MAX_SPAN_WORDS = 8
MAX_CJK_NAME = 16

_WORD = re.compile(r"[^\W\d_][\w'’./&-]*|&|\d+[\w]*")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]{2,}")
_CONNECTORS = frozenset({"of", "and", "&", "for", "de"})
_LEADING = frozenset(
    [
        "the",
        "a",
        "an",
        "in",
        "on",
        "at",
        "by",
        "from",
        "to",
        "for",
        "of",
        "and",
        "with",
        "via",
        "as",
        "its",
        "their",
        "this",
        "that",
        "these",
        "those",
    ]
)
_LEGAL_LOWER = frozenset({"co.", "co", "ltd", "ltd.", "corp", "corp.", "inc", "inc.", "llc", "j/v", "jv"})
_BREAKS = re.compile(
    r"[;:!?()\[\]\"“”\n]|(?<![A-Z][a-z])(?<!\b[A-Z])(?<!\bCo)(?<!\bLtd)(?<!\bCorp)(?<!\bInc)\.(?=\s|$)|,(?!\s*(?:Ltd|LTD|Limited|LIMITED|Inc|INC)\b)"
)


_GENERIC = LEGAL_WORDS | WEAK_WORDS | {"j/v", "shipping", "machinery", "bank", "international", "industry"}


def _capitalised(word: str) -> bool:
    return word[0].isupper() or word.casefold() in _LEGAL_LOWER


def name_runs(text: str) -> list[list[str]]:
    """Runs of capitalised words (with ``of``/``and`` inside), split at sentence punctuation."""
    runs: list[list[str]] = []
    for segment in _BREAKS.split(text):
        run: list[str] = []
        for match in _WORD.finditer(segment):
            word = match.group(0).strip(".'’-")
            if not word:
                continue
            if _capitalised(word) or (run and word.casefold() in _CONNECTORS):
                run.append(word)
                continue
            if run:
                runs.append(run)
            run = []
        if run:
            runs.append(run)
    cleaned = []
    for run in runs:
        while run and (run[0].casefold() in _LEADING or run[0].casefold() in _CONNECTORS):
            run = run[1:]
        while run and run[-1].casefold() in _CONNECTORS:
            run = run[:-1]
        if run:
            cleaned.append(run)
    return cleaned


def candidate_names(text: str) -> list[str]:
    """Every span worth screening: runs of two or more capitalised words and their sub-spans,
    single all-capital words of four letters or more (KOMID), and Chinese or Korean runs."""
    seen: dict[str, str] = {}
    for run in name_runs(text):
        n = len(run)
        for size in range(min(n, MAX_SPAN_WORDS), 0, -1):
            for start in range(n - size + 1):
                span = run[start : start + size]
                if span[0].casefold() in _CONNECTORS or span[-1].casefold() in _CONNECTORS:
                    continue
                if size == 1 and not (span[0].isupper() and len(span[0]) >= 4):
                    continue
                if all(w.casefold().strip(".") in _GENERIC for w in span):
                    continue
                phrase = " ".join(span)
                seen.setdefault(fold(phrase), phrase)
    for match in _CJK_RUN.finditer(text):
        if len(match.group(0)) <= MAX_CJK_NAME:
            seen.setdefault(fold(match.group(0)), match.group(0))
    return list(seen.values())


def exception_key(name: str) -> str:
    """The key a reviewed exception is kept under: the name as screening keys it, so the ways of
    writing one name (Co., Ltd., J/V, spacing, romanisation) share one exception."""
    return compact(core(key_tokens(name))) or " ".join(name.split()).casefold()


def exceptions_from(items: list[ScreeningException]) -> Exceptions:
    return Exceptions({(exception_key(e.name), e.entry): e for e in items})


_ROLE_WORDS = {
    "importer": "importer",
    "exporter": "exporter",
    "text": "named in the text:",
    "vessel": "vessel",
}


@dataclass(frozen=True, slots=True)
class PartyMatch:
    role: PartyRole
    match: Match
    skipped: ScreeningException | None = None
    """A reviewed exception that holds for this name and entry: the match is shown, not acted on."""

    def evidence(self) -> str:
        m, e = self.match, self.match.entry
        if self.skipped is not None:
            x = self.skipped
            until = x.expires.date().isoformat() if x.expires else "further notice"
            return (
                f'screening skipped "{m.query}" against {e.reference} {e.name}: exception by {x.by} '
                f"until {until} ({x.reason})"
            )
        listed = ", ".join(p for p in (e.list_type, f"listed {e.listed_on}" if e.listed_on else "") if p)
        by_number = m.note.startswith("IMO ")
        how = f" ({m.note})" if m.note and not by_number else ""
        if by_number:
            what = f"the same IMO number ({m.note})"
        else:
            what = f'{"former name" if m.matched_alias in e.previous_names else "alias"} "{m.matched_alias}"'
        return (
            f'{_ROLE_WORDS[self.role]} "{m.query}"{how} matches {e.reference} {e.name}'
            + (f" ({listed})" if listed else "")
            + f": {what}, score {m.score:.2f}"
        )


@dataclass
class PartyScreen:
    """One report's parties screened once; rules then filter by list and score."""

    index: ScreeningIndex
    report: ImportReport
    now: datetime | None = None
    comparisons: int = 0
    notes: list[str] = field(default_factory=list)
    """What was not matched and why (an IMO number with a wrong check digit)."""
    _found: list[PartyMatch] | None = field(default=None, repr=False)

    def names(self) -> Iterator[tuple[PartyRole, str]]:
        if self.report.importer:
            yield "importer", self.report.importer
        if self.report.exporter:
            yield "exporter", self.report.exporter
        if self.report.text:
            for name in candidate_names(self.report.text):
                yield "text", name

    def vessels(self) -> Iterator[tuple[PartyRole, str | None, str | None]]:
        """(role, name, IMO number as written): the report's vessels, then the text's numbers."""
        given: set[str] = set()
        for vessel in self.report.vessels:
            if vessel.imo:
                given.add(vessel.imo)
            yield "vessel", vessel.name, vessel.imo
        if self.report.text:
            for mention in find_imo_numbers(self.report.text):
                if mention.digits not in given:
                    yield "vessel", None, mention.written

    def _keep(self, found: dict[tuple[PartyRole, str], PartyMatch], role: PartyRole, match: Match) -> None:
        now = self.now or datetime.now(UTC)
        skipped = (
            self.index.exceptions.find(exception_key(match.query), match.entry, now)
            if len(self.index.exceptions)
            else None
        )
        key = (role, match.entry.reference)
        if key not in found or match.score > found[key].match.score:
            found[key] = PartyMatch(role, match, skipped)

    def found(self) -> list[PartyMatch]:
        if self._found is None and not len(self.index):
            self._found = []  # no lists loaded: nothing to look for
        if self._found is None:
            found: dict[tuple[PartyRole, str], PartyMatch] = {}
            for role, name in self.names():
                search = self.index.search(name, SCREEN_FLOOR, kinds=PARTY_KINDS)
                self.comparisons += search.comparisons
                for match in search.matches:
                    self._keep(found, role, match)
            if self.report.text:  # Chinese and Korean names inside longer runs: by exact key
                for match in self.index.find_in_text(self.report.text):
                    if match.entry.kind in PARTY_KINDS and ("text", match.entry.reference) not in found:
                        self._keep(found, "text", match)
            for role, vessel_name, imo in self.vessels():
                search = self.index.search_vessel(vessel_name, imo, SCREEN_FLOOR)
                self.comparisons += search.comparisons
                self.notes += [n for n in search.notes if n not in self.notes]
                for match in search.matches:
                    self._keep(found, role, match)
            self._found = sorted(found.values(), key=lambda p: (-p.match.score, p.match.entry.reference))
        return self._found

    def _wanted(self, cond: PartyCondition) -> list[PartyMatch]:
        lists = frozenset(cond.lists)
        roles = frozenset(cond.roles)
        return [
            p
            for p in self.found()
            if p.role in roles
            and p.match.score >= cond.min_score
            and ("any" in lists or not lists.isdisjoint(p.match.entry.tags))
        ]

    def matches(self, cond: PartyCondition) -> list[PartyMatch]:
        """The matches that hold the condition (reviewed exceptions left out)."""
        return [p for p in self._wanted(cond) if p.skipped is None]

    def skipped(self, cond: PartyCondition) -> list[PartyMatch]:
        """The matches a reviewed exception holds back from the condition."""
        return [p for p in self._wanted(cond) if p.skipped is not None]

    def skip_lines(self) -> list[str]:
        """Every match a reviewed exception held back, as evidence lines."""
        return [p.evidence() for p in self.found() if p.skipped is not None]

    def ignoring_exceptions(self) -> PartyScreen:
        """The same screen as if no exception had been reviewed (to tell whether one held a rule back)."""
        found = [PartyMatch(p.role, p.match) for p in self.found()]
        return PartyScreen(self.index, self.report, self.now, self.comparisons, list(self.notes), found)

    def vessel_notes(self, cond: PartyCondition) -> list[str]:
        return list(self.notes) if "vessel" in cond.roles or "text" in cond.roles else []


def party_test(cond: PartyCondition) -> Callable[[PartyScreen | None], list[str] | None]:
    """The ``party:`` condition as a test on a report's screen: evidence lines, or None. Matches
    held back by a reviewed exception and IMO numbers that could not be matched are named beside
    the matches that hold."""

    def test(screen: PartyScreen | None) -> list[str] | None:
        if screen is None:
            return None
        hits = screen.matches(cond)
        if not hits:
            return None
        return [
            *(hit.evidence() for hit in hits),
            *(hit.evidence() for hit in screen.skipped(cond)),
            *screen.vessel_notes(cond),
        ]

    return test


def party_skips(cond: PartyCondition) -> Callable[[PartyScreen | None], list[str]]:
    """What reviewed exceptions held back from the condition: evidence lines."""

    def skips(screen: PartyScreen | None) -> list[str]:
        return [hit.evidence() for hit in screen.skipped(cond)] if screen is not None else []

    return skips
