"""HS codes that exist: the chapters the project knows by itself, and a nomenclature file when given.

Without a file only the chapter is checked: chapters run from 01 to 97, and 77 is reserved (it
holds no goods). With the HS 2022 nomenclature (``TRADEWATCH_NOMENCLATURE_FILE`` or ``rules check
--nomenclature PATH``: a CSV with the columns ``hscode`` and ``description``, as the
``harmonized-system`` data package publishes it) every 2-, 4- and 6-digit code is checked; a
longer code (a national tariff line) is checked on its first six digits, which are the HS's.
"""

from __future__ import annotations

import csv
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.yamlfile import ConfigError, Problem

RESERVED_CHAPTERS = frozenset({"77"})
CHAPTERS = frozenset(f"{n:02d}" for n in range(1, 98)) - RESERVED_CHAPTERS
"""The chapters of the Harmonized System: 01 to 97 without 77, reserved for future use."""

MAX_FILE_BYTES = 20_000_000


@dataclass(frozen=True)
class Nomenclature:
    """The codes of one HS edition (2, 4 and 6 digits) with their descriptions."""

    source: str
    descriptions: dict[str, str]
    _sorted: list[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sorted", sorted(self.descriptions))

    def __contains__(self, code: object) -> bool:
        return code in self.descriptions

    def has_prefix(self, prefix: str) -> bool:
        """Some code of the nomenclature starts with ``prefix`` (or is a prefix of it)."""
        i = bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix)

    def between(self, low: str, high: str) -> list[str]:
        """Codes of ``low``'s length from ``low`` to ``high`` (equal lengths), in order."""
        i = bisect_left(self._sorted, low)
        found = []
        for code in self._sorted[i:]:
            if code[: len(high)] > high:
                break
            if len(code) == len(low):
                found.append(code)
        return found

    def nearest(self, code: str, n: int = 3) -> list[str]:
        """Codes of ``code``'s length under its longest existing parent, the closest first."""
        for cut in range(len(code) - 1, 1, -1):
            parent = code[:cut]
            siblings = [c for c in self._under(parent) if len(c) == len(code)]
            if siblings:
                return sorted(siblings, key=lambda c: (abs(int(c) - int(code)), c))[:n]
        return []

    def _under(self, prefix: str) -> list[str]:
        i = bisect_left(self._sorted, prefix)
        found = []
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            found.append(self._sorted[i])
            i += 1
        return found


def load_nomenclature(path: Path) -> Nomenclature:
    """Read a nomenclature CSV; a :class:`ConfigError` says what is wrong with it."""
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError([Problem(file, None, f"{size} bytes, over the limit of {MAX_FILE_BYTES}")])
        with path.open(encoding="utf-8-sig", newline="") as f:
            return _read(file, csv.DictReader(f))
    except FileNotFoundError:
        raise ConfigError([Problem(file, None, "no such file (the HS nomenclature)")]) from None
    except UnicodeDecodeError as error:
        raise ConfigError([Problem(file, None, f"not UTF-8 text (byte {error.start})")]) from None
    except (OSError, csv.Error) as error:
        raise ConfigError([Problem(file, None, f"cannot be read as CSV: {error}")]) from None


def _read(file: str, rows: csv.DictReader[str]) -> Nomenclature:
    columns = set(rows.fieldnames or ())
    if not {"hscode", "description"} <= columns:
        raise ConfigError(
            [Problem(file, 1, "not an HS nomenclature: the columns hscode and description are missing")]
        )
    descriptions: dict[str, str] = {}
    for row in rows:
        code = (row.get("hscode") or "").strip()
        if code.isdigit() and len(code) in (2, 4, 6):
            descriptions[code] = (row.get("description") or "").strip()
    if not any(len(c) == 2 for c in descriptions):
        raise ConfigError([Problem(file, None, "not an HS nomenclature: it lists no 2-digit chapter")])
    return Nomenclature(file, descriptions)


def _chapter_problem(code: str) -> str | None:
    chapter = code[:2]
    inside = "" if code == chapter else f"{code} is in chapter {chapter}, and "
    if chapter in RESERVED_CHAPTERS:
        return f"{inside}chapter {chapter} is reserved in the HS: it holds no goods"
    if chapter not in CHAPTERS:
        return f"{inside}there is no HS chapter {chapter}: chapters run from 01 to 97"
    return None


def code_problem(code: str, nomenclature: Nomenclature | None = None) -> str | None:
    """Why the HS code (or prefix) ``code`` (digits only) names no goods, or None when it may."""
    problem = _chapter_problem(code)
    if problem is not None or nomenclature is None:
        return problem
    hs_part = code[:6]
    if nomenclature.has_prefix(hs_part):
        return None
    national = f" (its first six digits, {hs_part}, are the HS part)" if len(code) > 6 else ""
    sentence = f"{code} is not in the HS nomenclature ({nomenclature.source}){national}"
    near = nomenclature.nearest(hs_part) if len(hs_part) in (4, 6) else []
    if near:
        parent = hs_part[: len(hs_part) - 2]
        under = f" under {parent} ({_short(nomenclature.descriptions.get(parent, ''))})" if parent else ""
        sentence += f"; did you mean {_either(near)}{under}?"
    return sentence


def selector_problem(selector: str, nomenclature: Nomenclature | None = None) -> str | None:
    """Why a rule's HS selector (a prefix, or a range ``72-83``) can never match, or None."""
    low, _, high = selector.partition("-")
    if not high:
        return code_problem(low, nomenclature)
    for end in (low, high):
        problem = _chapter_problem(end)
        if problem is not None:
            return f"range {selector}: {problem}"
    if nomenclature is not None and len(low) in (2, 4, 6) and not nomenclature.between(low, high):
        return f"range {selector} holds no code of the HS nomenclature ({nomenclature.source})"
    return None


def _either(codes: Iterable[str]) -> str:
    listed = list(codes)
    return listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"


def _short(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 3].rstrip() + "..."


def hs_display(code: str | None) -> str | None:
    """``842952`` -> ``8429.52``; ``84589100`` -> ``8458.91.00``; chapters and headings as they are."""
    if not code:
        return None
    code = code.replace(".", "")
    if len(code) <= 4:
        return code
    return ".".join([code[:4], *(code[i : i + 2] for i in range(4, len(code), 2))])
