"""Party matches of a case beside the entries they matched, as the lists in force give them.

A party finding's evidence names the party as reported, the entry's reference and name, how it
matched and its score (``services/sanctions/matcher.py`` writes it). The console reads those
lines back and puts each beside the listed entry (names, aliases, names in their own script,
reference, programme, listing date) taken from the lists loaded in Redis, so an analyst compares
the two without leaving the case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aredis

from services.sanctions.lists import ListedEntry
from services.sanctions.store import ListsUnavailable, SanctionsStore, signature
from services.settings import Settings

_MATCH = re.compile(
    r'^(?P<role>importer|exporter|vessel|named in the text:) "(?P<query>[^"]*)"(?: \((?P<note>[^)]*)\))?'
    r" matches (?P<reference>\S+) (?P<listed>.+?): (?P<how>[^:]+), score (?P<score>[\d.]+)$"
)
_SKIPPED = re.compile(
    r'^screening skipped "(?P<query>[^"]*)" against (?P<reference>\S+) (?P<listed>.+?): (?P<exception>exception by .+)$'
)


@dataclass(frozen=True)
class PartyMatch:
    role: str
    query: str
    reference: str
    how: str
    score: float | None
    exception: str | None
    """A reviewed exception that held this match back: who, until when, why."""
    entry: ListedEntry | None
    """The entry as the lists in force have it; None when it is no longer listed (or not loaded)."""


def parse(lines: Iterable[str]) -> list[tuple[str, str, str, str, float | None, str | None]]:
    """(role, query, reference, how, score, exception) of each party line, in order, once each."""
    found: dict[tuple[str, str], tuple[str, str, str, str, float | None, str | None]] = {}
    for line in lines:
        if (m := _MATCH.match(line)) is not None:
            role = "named in the text" if m["role"].startswith("named") else m["role"]
            how = m["how"] + (f" ({m['note']})" if m["note"] else "")
            found.setdefault(
                (m["query"], m["reference"]), (role, m["query"], m["reference"], how, float(m["score"]), None)
            )
        elif (s := _SKIPPED.match(line)) is not None:
            key = (s["query"], s["reference"])
            found.setdefault(key, ("party", s["query"], s["reference"], "held back", None, s["exception"]))
    return list(found.values())


class ListedEntries:
    """The entries of the lists in force by reference, read again when a list version changes."""

    def __init__(self, redis: aredis.Redis, settings: Settings) -> None:
        self.store = SanctionsStore(redis, settings)
        self._signature: str | None = None
        self._by_reference: dict[str, ListedEntry] = {}

    async def lookup(self, references: Iterable[str]) -> dict[str, ListedEntry]:
        wanted = list(references)
        if not wanted:
            return {}
        pointers = await self.store.pointers()
        if signature(pointers) != self._signature:
            try:
                pointers, entries = await self.store.read()
            except ListsUnavailable:
                return {}
            self._by_reference = {e.reference: e for e in entries}
            self._signature = signature(pointers)
        return {r: self._by_reference[r] for r in wanted if r in self._by_reference}


async def party_matches(lines: Iterable[str], entries: ListedEntries) -> list[PartyMatch]:
    parsed = parse(lines)
    listed = await entries.lookup(p[2] for p in parsed)
    return [
        PartyMatch(role, query, reference, how, score, exception, listed.get(reference))
        for role, query, reference, how, score, exception in parsed
    ]
