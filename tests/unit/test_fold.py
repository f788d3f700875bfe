"""``fold`` has fast paths (ASCII text, remembered clusters); they must give what the plain
per-cluster definition gives, spans included."""

from __future__ import annotations

import random
import re
import unicodedata

from services.textmatch import Folded, _continues_cluster, _joins, fold

_SEPARATOR_CHARS = re.compile(r"[\s\-_/·]")


def reference_fold(text: str) -> Folded:
    """The definition: each cluster NFKC-normalised and case-folded, separators as one space,
    then a single space dropped between a CJK character and a letter, a digit or CJK."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and _continues_cluster(text[j]):
            j += 1
        for char in unicodedata.normalize("NFKC", text[i:j]).casefold():
            if _SEPARATOR_CHARS.match(char):
                if out and out[-1] == " ":
                    ends[-1] = j
                    continue
                char = " "
            out.append(char)
            starts.append(i)
            ends.append(j)
        i = j
    keep = [
        not (c == " " and 0 < k < len(out) - 1 and _joins(out[k - 1], out[k + 1])) for k, c in enumerate(out)
    ]
    return Folded(
        "".join(c for c, ok in zip(out, keep, strict=True) if ok),
        tuple(s for s, ok in zip(starts, keep, strict=True) if ok),
        tuple(e for e, ok in zip(ends, keep, strict=True) if ok),
    )


ALPHABET = (
    "abcXYZ019 -_/·\t\n\u3000\u00a0ß Straße ÉéİıＡＢ１ﬁ①㎏"
    "丹东二手货车拖拉机 기계곡물건조기트랙터를 \u1100\u1161\u11a8 e\u0301 \u0323\u0307"
)


def test_fold_matches_its_definition_on_mixed_text() -> None:
    rng = random.Random(3)
    samples = [
        "",
        " ",
        "X-Ray 기계",
        "곡물 건조기",
        "CNC 선반",
        "  used   lathe -- for  ship hulls ",
        "二手 货车, tractor w/ front loader",
    ]
    samples += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40))) for _ in range(3_000)]
    samples += [
        "".join(rng.choice("ab -_/\t\nXY.,()") for _ in range(rng.randint(1, 30))) for _ in range(3_000)
    ]
    for text in samples:
        assert fold(text) == reference_fold(text), text
