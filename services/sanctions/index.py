"""The screening index: every listed name as a key, found by n-gram blocking, scored with rapidfuzz.

A query never scans the list. Its key's character n-grams (4-grams; bigrams for Chinese and
Korean) are looked up in an inverted index, the rarest few that occur at all are counted, and
only the ``candidates`` names sharing the most of them (plus exact key hits) are scored. The work
per query is bounded by the number of n-grams used, the cap on posting lengths and the number of
candidates, not by the size of the list; ``Search.comparisons`` counts the scorings, so a test can
check it.

Across scripts (:mod:`services.sanctions.korean`): a name in Hangul is also searched under its
Latin readings (McCune-Reischauer as the DPRK lists names, the usual words in English, a person's
name family name first), a name in Chinese characters under its Korean reading; a listed name in
Hangul is indexed under its readings too, so a Latin name finds it. A reading is compared only
with names written as listed (never a reading with a reading), and never with an entry that lists
a name in the query's own script: there the name as written decides (김종은 is not 김정은, though
McCune-Reischauer writes both Kim Jong Un).

Vessels are found by IMO number (:meth:`ScreeningIndex.search_vessel`): a valid number equal to a
listed vessel's is a hit whatever the names; by name only among vessels, where a hull number
(SAM JONG 2) must agree and a different valid IMO number means a different ship.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import ahocorasick
from rapidfuzz import fuzz

from schemas.sanctions import ScreeningException
from services.sanctions.korean import fold_hangul, has_han, has_hangul, korean_reading, readings
from services.sanctions.lists import ListedEntry
from services.sanctions.normalise import compact, core, fold, key_tokens
from services.sanctions.vessels import imo_digits, imo_valid
from services.textmatch import is_cjk

GRAM = 4
"""n-gram length for Latin keys (2 for Chinese and Korean)."""

RAREST_GRAMS = 10
"""n-grams of a query used for blocking (the rarest ones that occur in the index)."""

MAX_POSTING = 400
"""n-grams in more names than this are too common to block on (``trad``, ``ship``): an absolute
cap, so the work per query stays bounded however long the list grows."""

MIN_CJK_IN_TEXT = 4
"""Chinese or Korean names shorter than this are not looked for inside longer text."""

PARTY_KINDS = frozenset({"entity", "person", "other"})
"""What an importer, an exporter or a name in text can be: anything listed but a vessel."""

MAX_READINGS = 5
"""Readings of a name in another script searched at most (each one search)."""


def script_of(text: str) -> str:
    """``hangul`` when a name has Hangul, ``han`` when it has Chinese characters, else ``latin``."""
    if has_hangul(text):
        return "hangul"
    if has_han(text):
        return "han"
    return "latin"


def query_readings(query: str, script: str) -> list[tuple[str, str]]:
    """(reading, how it was read) of a name in Hangul or Chinese characters."""
    if script == "hangul":
        return [(r, f'read as "{r}"') for r in readings(query)[:MAX_READINGS]]
    if script == "han":
        folded = fold(query).replace(" ", "")
        person = 2 <= len(folded) <= 4 and folded[0] in ("金", "李", "朴", "崔", "张", "尹", "韩")
        korean = korean_reading(folded, person)
        if korean is None:
            return []
        out = [(korean, f'read in Korean as "{korean}"')]
        out += [(r, f'read in Korean as "{korean}", "{r}"') for r in readings(korean)[: MAX_READINGS - 1]]
        return out
    return []


def grams(text: str) -> set[str]:
    """Character n-grams of a compact key (``GRAM`` long; bigrams in Chinese or Korean script)."""
    size = 2 if text and is_cjk(text[0]) else GRAM
    padded = f"^{text}$"
    if len(padded) <= size:
        return {padded}
    return {padded[i : i + size] for i in range(len(padded) - size + 1)}


@dataclass(frozen=True, slots=True)
class IndexedName:
    entry: int
    written: str
    spaced: str
    compact: str
    script: str
    reading: str | None = None
    """For a listed name in Hangul indexed under a Latin reading: that reading."""


@dataclass(frozen=True, slots=True)
class Match:
    """A listed entry that a name matched, with the alias that matched best and its score."""

    query: str
    entry: ListedEntry
    matched_alias: str
    score: float
    note: str = ""
    """How scripts were bridged, or which identifier matched (read as "Kim Chong Un"; IMO 8660313)."""

    def as_dict(self) -> dict[str, object]:
        e = self.entry
        return {
            "query": self.query,
            "reference": e.reference,
            "name": e.name,
            "matched_alias": self.matched_alias,
            "score": round(self.score, 3),
            "note": self.note,
            "kind": e.kind,
            "list_type": e.list_type,
            "listed_on": e.listed_on,
            "lists": list(e.tags),
        }


@dataclass
class Search:
    matches: list[Match]
    comparisons: int
    postings_read: int = 0
    notes: list[str] = field(default_factory=list)
    """What was not matched and why (an IMO number with a wrong check digit)."""


def score_keys(q_spaced: str, q_compact: str, a_spaced: str, a_compact: str) -> float:
    """Similarity of two keys in [0, 1]: the better of whole-string and word-order-blind ratios."""
    if q_compact == a_compact:
        return 1.0
    whole = fuzz.ratio(q_compact, a_compact)
    words = fuzz.token_sort_ratio(q_spaced, a_spaced) if " " in q_spaced or " " in a_spaced else 0.0
    return max(whole, words) / 100.0


def score_person(q_spaced: str, q_compact: str, a_spaced: str, a_compact: str) -> float:
    """A person's name: as :func:`score_keys`, but each part must agree too (Jang Chang Ho is not
    Jang Chang Ha, though the whole strings differ by one letter in ten)."""
    whole = score_keys(q_spaced, q_compact, a_spaced, a_compact)
    if whole == 1.0:
        return whole
    q_parts, a_parts = q_spaced.split(), a_spaced.split()
    if len(q_parts) < 2 or len(q_parts) != len(a_parts):
        return whole
    left = list(a_parts)
    floor = 1.0
    for part in sorted(q_parts, key=len, reverse=True):
        best = max(left, key=lambda a: fuzz.ratio(part, a))
        floor = min(floor, fuzz.ratio(part, best) / 100.0)
        left.remove(best)
    return float(whole * floor**0.5)


_HULL = re.compile(r"\d+")
_NUMBER_WORD = re.compile(r"\b(?:no|nr|number)\b\.?\s*(?=\d)", re.I)  # YU JONG No. 2 = YU JONG 2


@dataclass
class ScreeningIndex:
    """Listed names, keyed and blocked; built once per list version, then only read."""

    entries: list[ListedEntry] = field(default_factory=list)
    names: list[IndexedName] = field(default_factory=list)
    exact: dict[str, list[int]] = field(default_factory=dict)
    postings: dict[str, list[int]] = field(default_factory=dict)
    scripts: list[frozenset[str]] = field(default_factory=list)
    """Per entry: the scripts its names are written in, as listed."""
    imo: dict[str, list[int]] = field(default_factory=dict)
    """IMO number -> the entries (vessels) that carry it."""
    version: str = ""
    candidates: int = 25
    exceptions: Exceptions = field(default_factory=lambda: Exceptions({}))
    """Reviewed exceptions, honoured by :class:`services.sanctions.matcher.PartyScreen`."""
    _cjk: ahocorasick.Automaton | None = field(default=None, repr=False)
    _positions: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, entries: Iterable[ListedEntry], version: str = "", candidates: int = 25) -> ScreeningIndex:
        index = cls(version=version, candidates=candidates)
        for entry in entries:
            index.add(entry)
        return index

    def _index_name(
        self, position: int, written: str, text: str, reading: str | None, seen: set[str]
    ) -> None:
        tokens = core(key_tokens(text))
        key = compact(tokens)
        if not key or key in seen:
            return
        seen.add(key)
        name_id = len(self.names)
        script = script_of(text)
        self.names.append(IndexedName(position, written, " ".join(tokens), key, script, reading))
        self.exact.setdefault(key, []).append(name_id)
        for gram in grams(key):
            self.postings.setdefault(gram, []).append(name_id)

    def add(self, entry: ListedEntry) -> None:
        position = len(self.entries)
        self.entries.append(entry)
        self._positions[id(entry)] = position
        seen: set[str] = set()
        written_names = entry.names()
        for written in written_names:
            self._index_name(position, written, written, None, seen)
        for written in written_names:  # a name listed in Hangul, found by its Latin readings too
            if has_hangul(written):
                for reading in readings(written)[:MAX_READINGS]:
                    self._index_name(position, written, reading, reading, seen)
        self.scripts.append(frozenset(script_of(n) for n in written_names))
        for digits in entry.imo_numbers:
            self.imo.setdefault(digits, []).append(position)

    def find_in_text(self, text: str) -> list[Match]:
        """Chinese or Korean names written inside a longer run of text (no spaces to split on),
        by exact key; each match's query is the text as found."""
        if self._cjk is None:
            automaton = ahocorasick.Automaton()
            for key in self.exact:
                if key and is_cjk(key[0]) and len(key) >= MIN_CJK_IN_TEXT:
                    automaton.add_word(key, key)
            if len(automaton):
                automaton.make_automaton()
            self._cjk = automaton
        if not len(self._cjk):
            return []
        folded = fold_hangul(fold(text).replace(" ", ""))
        found = []
        for _, key in self._cjk.iter(folded):
            for name_id in self.exact[key]:
                name = self.names[name_id]
                if name.reading is None:
                    found.append(Match(key, self.entries[name.entry], name.written, 1.0))
        return found

    def __len__(self) -> int:
        return len(self.entries)

    def _candidates(self, q_compact: str) -> tuple[set[int], int]:
        chosen = set(self.exact.get(q_compact, ()))
        usable = [
            (len(posting), gram)
            for gram in grams(q_compact)
            if (posting := self.postings.get(gram)) and len(posting) <= MAX_POSTING
        ]
        counts: Counter[int] = Counter()
        read = 0
        for size, gram in heapq.nsmallest(RAREST_GRAMS, usable):
            counts.update(self.postings[gram])
            read += size
        chosen.update(name_id for name_id, _ in counts.most_common(self.candidates))
        return chosen, read

    def search(
        self,
        query: str,
        min_score: float = 0.0,
        lists: Sequence[str] | None = None,
        kinds: frozenset[str] | None = None,
    ) -> Search:
        """Listed entries whose names score at least ``min_score`` against ``query``, best first;
        ``kinds``: only entries of these kinds (``PARTY_KINDS`` for a party, not a vessel)."""
        q_script = script_of(query)
        forms: list[tuple[str, str]] = [(query, ""), *query_readings(query, q_script)]
        wanted = frozenset(lists) if lists and "any" not in lists else None
        best: dict[int, tuple[float, str, str]] = {}
        comparisons = read = 0
        done: set[str] = set()
        for text, how in forms:
            tokens = core(key_tokens(text))
            q_compact = compact(tokens)
            if not q_compact or q_compact in done:
                continue
            done.add(q_compact)
            q_spaced = " ".join(tokens)
            chosen, postings = self._candidates(q_compact)
            read += postings
            for name_id in chosen:
                name = self.names[name_id]
                position = name.entry
                entry = self.entries[position]
                if wanted is not None and wanted.isdisjoint(entry.tags):
                    continue
                if kinds is not None and entry.kind not in kinds:
                    continue
                if (
                    how
                    and entry.kind == "person"
                    and (name.reading is not None or q_script in self.scripts[position])
                ):
                    continue  # a person: a reading against a reading, or where the name is listed in the query's script
                comparisons += 1
                scorer = score_person if entry.kind == "person" else score_keys
                score = scorer(q_spaced, q_compact, name.spaced, name.compact)
                if score >= min_score and score > best.get(position, (-1.0, "", ""))[0]:
                    note = how
                    if name.reading is not None:
                        note = f'listed in Hangul, read as "{name.reading}"'
                    best[position] = (score, name.written, note)
        matches = [
            Match(query, self.entries[e], alias, score, note) for e, (score, alias, note) in best.items()
        ]
        matches.sort(key=lambda m: (-m.score, m.entry.reference))
        return Search(matches, comparisons, read)

    def search_vessel(
        self, name: str | None, imo: str | None, min_score: float = 0.0, lists: Sequence[str] | None = None
    ) -> Search:
        """Listed vessels for a vessel named and/or numbered in a report: an IMO number (valid
        check digit) equal to a listed vessel's is a hit at 1.0 whatever the names; by name, only
        listed vessels, with the hull number agreeing and no other valid IMO number given."""
        wanted = frozenset(lists) if lists and "any" not in lists else None
        notes: list[str] = []
        found: dict[int, Match] = {}  # by the entry's position
        digits = imo_digits(imo) if imo else None
        valid = digits is not None and imo_valid(digits)
        query = name or imo or ""
        if imo and digits is None:
            notes.append(f"{imo!r} is not an IMO number (seven digits): not matched")
        elif digits is not None and not valid:
            notes.append(f"IMO {digits} has a wrong check digit: not a number to match")
        elif digits is not None:
            for position in self.imo.get(digits, ()):
                entry = self.entries[position]
                if wanted is None or not wanted.isdisjoint(entry.tags):
                    found[position] = Match(query, entry, f"IMO {digits}", 1.0, f"IMO {digits}")
        comparisons = len(found)
        read = 0
        if name:
            search = self.search(_NUMBER_WORD.sub(" ", name), min_score, lists, frozenset({"vessel"}))
            comparisons += search.comparisons
            read = search.postings_read
            hull = set(_HULL.findall(name))
            for match in search.matches:
                position = self._positions[id(match.entry)]
                listed_imo = match.entry.imo_numbers
                if position in found or set(_HULL.findall(match.matched_alias)) != hull:
                    continue  # found by its number already; SAM JONG 3 is not SAM JONG 2
                if valid and listed_imo and digits not in listed_imo:
                    notes.append(
                        f"{name!r} is named like {match.entry.reference} {match.entry.name}, but IMO "
                        f"{digits} is not its number ({', '.join(listed_imo)}): another ship"
                    )
                    continue
                former = match.matched_alias in match.entry.previous_names
                note = f'former name "{match.matched_alias}"' if former and not match.note else match.note
                found[position] = Match(query, match.entry, match.matched_alias, match.score, note)
        matches = sorted(found.values(), key=lambda m: (-m.score, m.entry.reference))
        return Search(matches, comparisons, read, notes)


@dataclass(frozen=True)
class Exceptions:
    """Reviewed exceptions by (name key, listed entry reference or id): see
    :func:`services.sanctions.matcher.exception_key`."""

    by_key: dict[tuple[str, str], ScreeningException]

    def __len__(self) -> int:
        return len(self.by_key)

    def find(self, name_key: str, entry: ListedEntry, now: datetime) -> ScreeningException | None:
        for ref in (entry.reference, entry.id):
            exception = self.by_key.get((name_key, ref))
            if exception is not None and (exception.expires is None or exception.expires > now):
                return exception
        return None
