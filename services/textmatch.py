"""Finding many terms in text at once, in English, Chinese and Korean.

One Aho-Corasick automaton per term set: the cost of a search grows with the text, not with the
number of terms. Latin-script terms match at word boundaries only (``lathe`` is not in
``lathered``); Chinese and Korean terms match anywhere (no spaces between words, and Korean
particles attach to the noun: 트랙터를).

Two ways in:

- ``normalise`` + ``TermMatcher.find``/``find_all``: text and terms NFKC-normalised, case-folded,
  hyphens and runs of spaces as one space. Spans are in the normalised text.
- ``fold`` + ``TermMatcher.search``: the same, and spaces between two CJK characters dropped too,
  so ``곡물 건조기`` and ``곡물건조기`` are one term (Korean spacing varies from writer to writer).
  Spans are mapped back to the original text. Build the matcher with ``key=fold_key`` for this.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import ahocorasick

T = TypeVar("T")

_SEPARATORS = re.compile(r"[\s\-_/·]+")
_SEPARATOR_CHARS = re.compile(r"[\s\-_/·]")


def normalise(text: str) -> str:
    """NFKC, case-folded, hyphens and runs of spaces as one space: ``X-Ray`` -> ``x ray``."""
    return _SEPARATORS.sub(" ", unicodedata.normalize("NFKC", text).casefold())


def aligned(text: str) -> tuple[str, list[int]]:
    """``normalise(text)`` with, for each of its characters, the index it came from in ``text``
    (``fold`` without joining CJK characters across a space)."""
    folded = fold(text, join_cjk=False)
    return folded.text, list(folded.starts)


def name_key(text: str) -> str:
    """A name compared blind to case, spacing and punctuation: ``Approved Farm Co.`` ~ ``approved farm co``."""
    return " ".join(re.sub(r"[^\w]+", " ", normalise(text)).split())


def _is_word_char(char: str) -> bool:
    return char.isalnum() and not is_cjk(char)


_WORD_CHARS: dict[str, bool] = {}


def _word_char(char: str) -> bool:
    """``_is_word_char``, remembered per character (text repeats its characters)."""
    known = _WORD_CHARS.get(char)
    if known is None:
        if len(_WORD_CHARS) >= _PIECES_MAX:
            _WORD_CHARS.clear()
        known = _WORD_CHARS[char] = _is_word_char(char)
    return known


# The scripts written without spaces between words: one definition for every matcher and every
# name key in the project (kana, CJK ideographs, Hangul syllables, jamo, compatibility jamo and
# compatibility ideographs).
CJK_CLASS = r"\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
CJK_RUN = re.compile(f"[{CJK_CLASS}]+")
"""A run of CJK characters (``CJK_RUN.sub`` sets them apart from Latin letters beside them)."""
_CJK_CHAR = re.compile(f"[{CJK_CLASS}]")


def is_cjk(char: str) -> bool:
    return _CJK_CHAR.match(char) is not None


def _joins(left: str, right: str) -> bool:
    return (is_cjk(left) and (is_cjk(right) or right.isalnum())) or (is_cjk(right) and left.isalnum())


def _continues_cluster(char: str) -> bool:
    """A combining mark or a Hangul vowel/final jamo: NFKC may merge it into the character before."""
    return unicodedata.combining(char) != 0 or 0x1160 <= ord(char) <= 0x11FF


@dataclass(frozen=True, slots=True)
class Folded:
    """Text folded for matching, with the span in the original text of every folded character."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original-text span of folded ``text[start:end]``."""
        return self.starts[start], self.ends[end - 1]


def fold(text: str, *, join_cjk: bool = True) -> Folded:
    """NFKC, case-folded, separators as one space, no space between two CJK characters (unless
    ``join_cjk`` is false).

    ``fold("X-Ray 기계").text == "x ray 기계"``; ``fold("곡물 건조기").text == "곡물건조기"``.
    """
    if text.isascii():
        return _fold_ascii(text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and _continues_cluster(text[j]):
            j += 1
        piece = _PIECES.get(text[i:j])
        if piece is None:
            piece = _piece(text[i:j])
        for char in piece:
            if char in "-_/·" or char.isspace():  # what _SEPARATOR_CHARS matches
                if out and out[-1] == " ":
                    ends[-1] = j
                    continue
                char = " "
            out.append(char)
            starts.append(i)
            ends.append(j)
        i = j
    # Drop a single space beside a CJK character when the other side is a letter, a digit or CJK:
    # Korean spacing is free and Chinese has none (곡물 건조기 = 곡물건조기, CNC 선반 = CNC선반).
    last = len(out) - 1
    drop = [k for k in range(1, last) if out[k] == " " and _joins(out[k - 1], out[k + 1])] if join_cjk else []
    if not drop:
        return Folded("".join(out), tuple(starts), tuple(ends))
    for k in reversed(drop):
        del out[k], starts[k], ends[k]
    return Folded("".join(out), tuple(starts), tuple(ends))


_PIECES: dict[str, str] = {}
_PIECES_MAX = 100_000


def _piece(cluster: str) -> str:
    """A cluster NFKC-normalised and case-folded; remembered (text repeats its characters)."""
    piece = unicodedata.normalize("NFKC", cluster).casefold()
    if len(_PIECES) >= _PIECES_MAX:
        _PIECES.clear()
    _PIECES[cluster] = piece
    return piece


def _fold_ascii(text: str) -> Folded:
    """``fold`` of ASCII text, with the same result: NFKC changes no ASCII character, case-folding
    is ``lower`` and no ASCII character is CJK; only runs of separators become one space."""
    lowered = text.lower()
    folded = _SEPARATORS.sub(" ", lowered)
    if len(folded) == len(text):
        # No run of two separators or more (the usual case: single spaces): each character
        # stays where it was, so every span is the identity.
        return Folded(folded, tuple(range(len(text))), tuple(range(1, len(text) + 1)))
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    at = 0
    for run in _SEPARATORS.finditer(lowered):
        a, b = run.span()
        parts.append(lowered[at:a])
        starts.extend(range(at, a))
        ends.extend(range(at + 1, a + 1))
        parts.append(" ")
        starts.append(a)
        ends.append(b)
        at = b
    parts.append(lowered[at:])
    starts.extend(range(at, len(text)))
    ends.extend(range(at + 1, len(text) + 1))
    return Folded("".join(parts), tuple(starts), tuple(ends))


def fold_key(term: str) -> str:
    """A term as ``fold`` writes it: the key to build a matcher for ``TermMatcher.search``."""
    return fold(term).text.strip()


def english_plurals(term: str) -> list[str]:
    """``machine`` -> ``machines``; ``press`` -> ``presses``; ``assembly`` -> ``assemblies``."""
    if not term or not term[-1].isalpha() or not term.isascii():
        return []
    if term.endswith("fe"):
        return [term[:-2] + "ves", term + "s"]
    if term.endswith(("s", "x", "z", "ch", "sh")):
        return [term + "es"]
    if term.endswith("y") and len(term) > 1 and term[-2] not in "aeiou":
        return [term[:-1] + "ies"]
    return [term + "s"]


# British and American spellings, and spellings traders use, word by word (both directions).
_SPELLINGS: tuple[tuple[str, str], ...] = (
    ("mould", "mold"),
    ("moulding", "molding"),
    ("moulder", "molder"),
    ("moulded", "molded"),
    ("dryer", "drier"),
    ("aluminium", "aluminum"),
    ("centre", "center"),
    ("jewellery", "jewelry"),
    ("tyre", "tire"),
    ("colour", "color"),
    ("fibre", "fiber"),
    ("metre", "meter"),
    ("litre", "liter"),
    ("grey", "gray"),
    ("sulphur", "sulfur"),
    ("plough", "plow"),
    ("analyser", "analyzer"),
    ("fertiliser", "fertilizer"),
    ("sterilizer", "steriliser"),
    ("programme", "program"),
    ("whisky", "whiskey"),
    ("galvanised", "galvanized"),
    ("galvanising", "galvanizing"),
)
_SPELLING_OF: dict[str, tuple[str, ...]] = {}
for _a, _b in _SPELLINGS:
    _SPELLING_OF[_a] = (*_SPELLING_OF.get(_a, ()), _b)
    _SPELLING_OF[_b] = (*_SPELLING_OF.get(_b, ()), _a)


def english_variants(term: str) -> list[str]:
    """Every way a trader may write an English (Latin-script) term, plurals included.

    Spellings word by word (``injection moulding machine`` -> ``... molding ...``), adjacent
    words of a term of up to four words written as one (``x ray machine`` -> ``xray machine``,
    ``water jet`` -> ``waterjet``), ``parts for X`` beside ``X parts``, and the plural of the last
    word of each. The term itself comes first.
    """
    base = normalise(term).strip()
    if not base:
        return []
    words = base.split(" ")
    spelled: list[list[str]] = [[w, *_SPELLING_OF.get(w, ())] for w in words]
    forms: list[str] = [""]
    for choices in spelled:
        forms = [f"{f} {c}".strip() for f in forms for c in choices]
    if 2 <= len(words) <= 4:
        # Any run of adjacent words written as one: x ray machine -> xray machine, xraymachine.
        joined: list[str] = []
        for form in forms:
            parts = form.split(" ")
            for mask in range(1, 2 ** (len(parts) - 1)):
                out_form = parts[0]
                for i, part in enumerate(parts[1:]):
                    out_form += ("" if mask >> i & 1 else " ") + part
                joined.append(out_form)
        forms += joined
    if len(words) >= 2 and words[-1] == "parts":
        # "tractor parts" is also written "parts for tractors", "spare parts of tractor".
        head = words[:-2] if words[-2] == "spare" else words[:-1]
        if head:
            goods = " ".join(head)
            for noun in [goods, *english_plurals(goods)]:
                forms += [f"{p} {w} {noun}" for p in ("parts", "spare parts") for w in ("for", "of")]
    out: list[str] = []
    for form in forms:
        out.append(form)
        if not form.startswith(("parts ", "spare parts ")):
            out += english_plurals(form)
    return list(dict.fromkeys(out))


class Hit(NamedTuple, Generic[T]):
    """A term found in text (a named tuple: matching makes many, and they must be cheap)."""

    start: int
    end: int
    term: str
    value: T


class TermMatcher(Generic[T]):
    """Terms to values; ``find`` returns the leftmost-longest hits.

    ``key`` turns a term into the form looked for: ``normalise`` (the default) for text passed
    through ``normalise``, ``fold_key`` for ``search``.
    """

    def __init__(
        self, terms: Iterable[tuple[str, T]], key: Callable[[str], str] = lambda t: normalise(t).strip()
    ) -> None:
        self._automaton = ahocorasick.Automaton()
        self.size = 0
        for term, value in terms:
            k = key(term)
            if not k:
                continue
            existing = self._automaton.get(k, None)
            values = existing[1] if existing else []
            if value not in values:
                values.append(value)
            # Whether each end of the term must sit at a word boundary, decided once per term.
            self._automaton.add_word(k, (k, values, _is_word_char(k[0]), _is_word_char(k[-1])))
            self.size += 1
        if self.size:
            self._automaton.make_automaton()

    def find_all(self, normalised_text: str) -> list[Hit[T]]:
        """Every hit at word boundaries, overlapping ones included."""
        if not self.size or not normalised_text:
            return []
        text = normalised_text
        size = len(text)
        hits: list[Hit[T]] = []
        for end_index, (key, values, bounded_start, bounded_end) in self._automaton.iter(text):
            start = end_index - len(key) + 1
            end = end_index + 1
            if bounded_start and start > 0 and _word_char(text[start - 1]):
                continue
            if bounded_end and end < size and _word_char(text[end]):
                continue
            hits.extend(Hit(start, end, key, value) for value in values)
        return hits

    def find(self, normalised_text: str) -> list[Hit[T]]:
        """Non-overlapping hits, longer terms first: ``CNC cutting machine`` over ``cutting machine``."""
        return longest_first(self.find_all(normalised_text))

    def search(self, text: str) -> list[Hit[T]]:
        """``find`` on raw text folded with ``fold``; spans are in ``text`` itself."""
        folded = fold(text)
        out: list[Hit[T]] = []
        for hit in self.find(folded.text):
            start, end = folded.span(hit.start, hit.end)
            out.append(Hit(start, end, hit.term, hit.value))
        return out


def longest_first(hits: Iterable[Hit[T]]) -> list[Hit[T]]:
    """The hits that overlap no longer one (the earlier of two equals), in text order."""
    chosen: list[Hit[T]] = []
    taken: list[tuple[int, int]] = []
    for hit in sorted(hits, key=lambda h: (h.start - h.end, h.start)):
        if any(hit.start < e and s < hit.end for s, e in taken):
            continue
        chosen.append(hit)
        taken.append((hit.start, hit.end))
    chosen.sort(key=lambda h: h.start)
    return chosen


def clip(text: str, limit: int) -> str:
    """The text on one line, cut at a word boundary within ``limit`` characters, with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"
