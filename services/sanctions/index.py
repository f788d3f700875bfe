"""The screening index: every listed name as a key, found by n-gram blocking, scored with rapidfuzz.

A query never scans the list. Its key's character n-grams (4-grams; bigrams for Chinese and
Korean) are looked up in an inverted index, the rarest few that occur at all are counted, and
only the ``candidates`` names sharing the most of them (plus exact key hits) are scored. The work
per query is bounded by the number of n-grams used, the cap on posting lengths and the number of
candidates, not by the size of the list; ``Search.comparisons`` counts the scorings, so a test can
check it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import ahocorasick
from rapidfuzz import fuzz

from services.sanctions.exceptions import ActiveException
from services.sanctions.lists import ListedEntry
from services.sanctions.normalise import compact, core, fold, key_tokens
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


@dataclass(frozen=True, slots=True)
class Match:
    """A listed entry that a name matched, with the alias that matched best and its score."""

    query: str
    entry: ListedEntry
    matched_alias: str
    score: float

    def as_dict(self) -> dict[str, object]:
        e = self.entry
        return {
            "query": self.query,
            "reference": e.reference,
            "name": e.name,
            "matched_alias": self.matched_alias,
            "score": round(self.score, 3),
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


def score_keys(q_spaced: str, q_compact: str, a_spaced: str, a_compact: str) -> float:
    """Similarity of two keys in [0, 1]: the better of whole-string and word-order-blind ratios."""
    if q_compact == a_compact:
        return 1.0
    whole = fuzz.ratio(q_compact, a_compact)
    words = fuzz.token_sort_ratio(q_spaced, a_spaced) if " " in q_spaced or " " in a_spaced else 0.0
    return max(whole, words) / 100.0


@dataclass
class ScreeningIndex:
    """Listed names, keyed and blocked; built once per list version, then only read."""

    entries: list[ListedEntry] = field(default_factory=list)
    names: list[IndexedName] = field(default_factory=list)
    exact: dict[str, list[int]] = field(default_factory=dict)
    postings: dict[str, list[int]] = field(default_factory=dict)
    version: str = ""
    candidates: int = 25
    _cjk: ahocorasick.Automaton | None = field(default=None, repr=False)
    exceptions: tuple[ActiveException, ...] = ()
    """Reviewed "not this party" decisions in force: screening skips what they cover, and says so."""

    def with_exceptions(self, exceptions: tuple[ActiveException, ...]) -> ScreeningIndex:
        """The same index (shared, not copied) with these exceptions in force."""
        if exceptions == self.exceptions:
            return self
        return replace(self, exceptions=exceptions)

    @classmethod
    def build(cls, entries: Iterable[ListedEntry], version: str = "", candidates: int = 25) -> ScreeningIndex:
        index = cls(version=version, candidates=candidates)
        for entry in entries:
            index.add(entry)
        return index

    def add(self, entry: ListedEntry) -> None:
        position = len(self.entries)
        self.entries.append(entry)
        seen: set[str] = set()
        for written in entry.names():
            tokens = core(key_tokens(written))
            key = compact(tokens)
            if not key or key in seen:
                continue
            seen.add(key)
            name_id = len(self.names)
            self.names.append(IndexedName(position, written, " ".join(tokens), key))
            self.exact.setdefault(key, []).append(name_id)
            for gram in grams(key):
                self.postings.setdefault(gram, []).append(name_id)

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
        folded = fold(text)
        found = []
        for _, key in self._cjk.iter(folded):
            for name_id in self.exact[key]:
                name = self.names[name_id]
                found.append(Match(key, self.entries[name.entry], name.written, 1.0))
        return found

    def __len__(self) -> int:
        return len(self.entries)

    def search(self, query: str, min_score: float = 0.0, lists: Sequence[str] | None = None) -> Search:
        """Listed entries whose names score at least ``min_score`` against ``query``, best first."""
        tokens = core(key_tokens(query))
        q_compact = compact(tokens)
        if not q_compact:
            return Search([], 0)
        q_spaced = " ".join(tokens)
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
        wanted = frozenset(lists) if lists else None
        best: dict[int, tuple[float, str]] = {}
        for name_id in chosen:
            name = self.names[name_id]
            entry = self.entries[name.entry]
            if wanted is not None and wanted.isdisjoint(entry.tags):
                continue
            score = score_keys(q_spaced, q_compact, name.spaced, name.compact)
            if score >= min_score and score > best.get(name.entry, (-1.0, ""))[0]:
                best[name.entry] = (score, name.written)
        matches = [Match(query, self.entries[e], alias, score) for e, (score, alias) in best.items()]
        matches.sort(key=lambda m: (-m.score, m.entry.reference))
        return Search(matches, len(chosen), read)
