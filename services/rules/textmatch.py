"""Finding many terms in text at once, in English, Chinese and Korean.

One Aho-Corasick automaton per term set: the cost of a search grows with the text, not with the
number of terms. Latin-script terms match at word boundaries only (``lathe`` is not in
``lathered``); Chinese and Korean terms match anywhere (no spaces between words, and Korean
particles attach to the noun: 트랙터를).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import ahocorasick

T = TypeVar("T")

_SEPARATORS = re.compile(r"[\s\-_/·]+")


def normalise(text: str) -> str:
    """NFKC, case-folded, hyphens and runs of spaces as one space: ``X-Ray`` -> ``x ray``."""
    return _SEPARATORS.sub(" ", unicodedata.normalize("NFKC", text).casefold())


def name_key(text: str) -> str:
    """A name compared blind to case, spacing and punctuation: ``Approved Farm Co.`` ~ ``approved farm co``."""
    return " ".join(re.sub(r"[^\w]+", " ", normalise(text)).split())


def _is_word_char(char: str) -> bool:
    return char.isalnum() and not _is_cjk(char)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # kana
        or 0x3400 <= code <= 0x9FFF  # CJK ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0x1100 <= code <= 0x11FF  # Hangul jamo
        or 0xF900 <= code <= 0xFAFF
    )


def english_plurals(term: str) -> list[str]:
    """``machine`` -> ``machines``; ``press`` -> ``presses``; ``assembly`` -> ``assemblies``."""
    if not term or not term[-1].isalpha() or not term.isascii():
        return []
    if term.endswith(("s", "x", "z", "ch", "sh")):
        return [term + "es"]
    if term.endswith("y") and len(term) > 1 and term[-2] not in "aeiou":
        return [term[:-1] + "ies"]
    return [term + "s"]


@dataclass(frozen=True, slots=True)
class Hit(Generic[T]):
    start: int
    end: int
    term: str
    value: T


class TermMatcher(Generic[T]):
    """Terms (already normalised) to values; ``find`` returns the leftmost-longest hits."""

    def __init__(self, terms: Iterable[tuple[str, T]]) -> None:
        self._automaton = ahocorasick.Automaton()
        self.size = 0
        for term, value in terms:
            key = normalise(term).strip()
            if not key:
                continue
            existing = self._automaton.get(key, None)
            values = existing[1] if existing else []
            values.append(value)
            self._automaton.add_word(key, (key, values))
            self.size += 1
        if self.size:
            self._automaton.make_automaton()

    def find_all(self, normalised_text: str) -> list[Hit[T]]:
        """Every hit at word boundaries, overlapping ones included."""
        if not self.size or not normalised_text:
            return []
        text = normalised_text
        hits: list[Hit[T]] = []
        for end_index, (key, values) in self._automaton.iter(text):
            start = end_index - len(key) + 1
            end = end_index + 1
            if _is_word_char(key[0]) and start > 0 and _is_word_char(text[start - 1]):
                continue
            if _is_word_char(key[-1]) and end < len(text) and _is_word_char(text[end]):
                continue
            hits.extend(Hit(start, end, key, value) for value in values)
        return hits

    def find(self, normalised_text: str) -> list[Hit[T]]:
        """Non-overlapping hits, longer terms first: ``CNC cutting machine`` over ``cutting machine``."""
        chosen: list[Hit[T]] = []
        taken: list[tuple[int, int]] = []
        for hit in sorted(self.find_all(normalised_text), key=lambda h: (h.start - h.end, h.start)):
            if any(hit.start < e and s < hit.end for s, e in taken):
                continue
            chosen.append(hit)
            taken.append((hit.start, hit.end))
        chosen.sort(key=lambda h: h.start)
        return chosen
