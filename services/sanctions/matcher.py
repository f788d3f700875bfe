"""Screening a report: its importer, its exporter and the organisation names in its text.

Names in free text are found as runs of capitalised words (``Korea Ryonha Machinery J/V Co.``),
each tried whole and in its shorter spans; Chinese and Korean runs are tried as they stand.
The work is done once per report (:class:`PartyScreen`, cached) whatever the number of rules
asking; :func:`party_test` turns a rule's ``party:`` condition into evidence a person can check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from schemas.report import ImportReport
from schemas.sanctions import PartyCondition, PartyRole
from services.sanctions.index import Match, ScreeningIndex
from services.sanctions.normalise import LEGAL_WORDS, WEAK_WORDS, fold

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


@dataclass(frozen=True, slots=True)
class PartyMatch:
    role: PartyRole
    match: Match

    def evidence(self) -> str:
        m, e = self.match, self.match.entry
        where = {"importer": "importer", "exporter": "exporter", "text": "named in the text:"}[self.role]
        listed = ", ".join(p for p in (e.list_type, f"listed {e.listed_on}" if e.listed_on else "") if p)
        return (
            f'{where} "{m.query}" matches {e.reference} {e.name}'
            + (f" ({listed})" if listed else "")
            + f': alias "{m.matched_alias}", score {m.score:.2f}'
        )


@dataclass
class PartyScreen:
    """One report's parties screened once; rules then filter by list and score."""

    index: ScreeningIndex
    report: ImportReport
    comparisons: int = 0
    _found: list[PartyMatch] | None = field(default=None, repr=False)
    skipped: list[str] = field(default_factory=list)
    """What the exceptions in force (``index.exceptions``) made screening skip, in words."""

    def names(self) -> Iterator[tuple[PartyRole, str]]:
        if self.report.importer:
            yield "importer", self.report.importer
        if self.report.exporter:
            yield "exporter", self.report.exporter
        if self.report.text:
            for name in candidate_names(self.report.text):
                yield "text", name

    def found(self) -> list[PartyMatch]:
        if self._found is None and not len(self.index):
            self._found = []  # no lists loaded: nothing to look for
        if self._found is None:
            found: dict[tuple[PartyRole, str], PartyMatch] = {}
            for role, name in self.names():
                search = self.index.search(name, SCREEN_FLOOR)
                self.comparisons += search.comparisons
                for match in search.matches:
                    key = (role, match.entry.reference)
                    if key not in found or match.score > found[key].match.score:
                        found[key] = PartyMatch(role, match)
            if self.report.text:  # Chinese and Korean names inside longer runs: by exact key
                for match in self.index.find_in_text(self.report.text):
                    found.setdefault(("text", match.entry.reference), PartyMatch("text", match))
            kept = sorted(found.values(), key=lambda p: (-p.match.score, p.match.entry.reference))
            self._found = self._skip_excepted(kept) if self.index.exceptions else kept
        return self._found

    def _skip_excepted(self, found: list[PartyMatch]) -> list[PartyMatch]:
        kept = []
        for hit in found:
            m = hit.match
            cover = next((e for e in self.index.exceptions if e.covers(m.query, m.entry.reference)), None)
            if cover is None:
                kept.append(hit)
                continue
            where = {"importer": "importer", "exporter": "exporter", "text": "the name in the text"}[hit.role]
            line = cover.says(f'{where} "{m.query}"')
            if line not in self.skipped:
                self.skipped.append(line)
        return kept

    def matches(self, cond: PartyCondition) -> list[PartyMatch]:
        wanted = frozenset(cond.lists)
        roles = frozenset(cond.roles)
        return [
            p
            for p in self.found()
            if p.role in roles
            and p.match.score >= cond.min_score
            and not wanted.isdisjoint(p.match.entry.tags)
        ]


def party_test(cond: PartyCondition) -> Callable[[PartyScreen | None], list[str] | None]:
    """The ``party:`` condition as a test on a report's screen: evidence lines, or None."""

    def test(screen: PartyScreen | None) -> list[str] | None:
        if screen is None:
            return None
        hits = screen.matches(cond)
        # What an exception skipped is said beside what still matched.
        return [*(hit.evidence() for hit in hits), *screen.skipped] if hits else None

    return test
