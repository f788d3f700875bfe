"""IMO ship numbers: read as written, checked by their check digit, found in text.

An IMO number is seven digits, the last a check digit: the first six multiplied by 7, 6, 5, 4, 3
and 2, summed, modulo 10 (``9074729``: 9x7 + 0x6 + 7x5 + 4x4 + 7x3 + 2x2 = 139, check digit 9). A
ship keeps it through every renaming and reflagging, so a report's IMO number equal to a listed
vessel's is a hit whatever name either gives; a number whose check digit is wrong is a typo or a
made-up number, and is never matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WEIGHTS = (7, 6, 5, 4, 3, 2)
_WRITTEN = re.compile(r"^\s*(?:imo)?\s*(?:no\.?|number|n[o°º]\.?|#)?\s*[:.]?\s*(\d{7})\s*$", re.I)
_IN_TEXT = re.compile(r"\bIMO(?:\s*(?:No\.?|Number|Nr\.?|n[o°º]\.?|#))?\s*[:.]?\s*(\d{7})(?!\d)", re.I)


def imo_valid(digits: str) -> bool:
    """True when seven digits carry the right check digit."""
    if len(digits) != 7 or not digits.isdigit():
        return False
    return sum(int(d) * w for d, w in zip(digits, _WEIGHTS, strict=False)) % 10 == int(digits[6])


def imo_digits(written: str) -> str | None:
    """``IMO 8660313``, ``IMO No. 8660313``, ``IMO8660313`` or ``8660313`` -> ``8660313``;
    anything else -> None (the check digit is not checked here: see :func:`imo_valid`)."""
    found = _WRITTEN.match(written or "")
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class ImoMention:
    written: str
    digits: str
    valid: bool


def find_imo_numbers(text: str) -> list[ImoMention]:
    """Every IMO number written in text as ``IMO 1234567``, ``IMO No. 1234567`` or ``IMO: 1234567``."""
    seen: dict[str, ImoMention] = {}
    for match in _IN_TEXT.finditer(text or ""):
        digits = match.group(1)
        seen.setdefault(digits, ImoMention(match.group(0), digits, imo_valid(digits)))
    return list(seen.values())
