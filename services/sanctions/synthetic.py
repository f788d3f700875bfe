"""Generated listed names, for the benchmark and for tests that count comparisons.

Names are built like the real ones (a place or family syllable pair, a line of business, a legal
form, now and then "Korea" in front and an alias), from a fixed seed, so a run can be repeated.
"""

from __future__ import annotations

import random

from services.sanctions.lists import ListedEntry

_SYLLABLES = [
    "an",
    "bong",
    "chang",
    "chol",
    "chon",
    "chong",
    "dae",
    "dok",
    "gang",
    "gwang",
    "ha",
    "hae",
    "han",
    "hung",
    "hyang",
    "hyok",
    "il",
    "jin",
    "jong",
    "ju",
    "kang",
    "kum",
    "kwang",
    "man",
    "min",
    "myong",
    "nam",
    "ok",
    "pae",
    "pil",
    "pong",
    "pyong",
    "ri",
    "rim",
    "ryong",
    "ryon",
    "sam",
    "san",
    "se",
    "sin",
    "song",
    "sun",
    "tae",
    "tan",
    "ton",
    "un",
    "won",
    "yang",
    "yo",
    "yong",
    "yu",
]
_BUSINESS = (
    "Machinery", "Shipping", "Trading", "Mining", "Tractor", "Steel", "Electronics", "Chemical",
    "Marine", "Fishery", "Construction", "Engineering", "Textile", "Energy", "Logistics",
    "Equipment", "Petroleum", "Tool", "Export Import", "Technology", "Bank", "Credit", "Investment",
)  # fmt: skip
_FORMS = ("Corporation", "Co Ltd", "Company", "General Corporation", "JV", "Trading Company", "Group", "")


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()


def generated_entries(count: int, seed: int = 1718) -> list[ListedEntry]:
    rng = random.Random(seed)
    entries = []
    for number in range(count):
        words = [_word(rng)] + ([_word(rng)] if rng.random() < 0.3 else [])
        business = rng.sample(_BUSINESS, rng.choice((1, 1, 2)))
        name = " ".join(
            (["Korea"] if rng.random() < 0.4 else []) + words + business + [rng.choice(_FORMS)]
        ).strip()
        aliases = [" ".join([*words, business[0], "Co"])] if rng.random() < 0.5 else []
        entries.append(
            ListedEntry(
                id=f"gen-{number}",
                reference=f"GEN.{number:05d}",
                kind="entity",
                name=name,
                aliases=aliases,
                list_type="GEN",
                tags=["generated"],
            )
        )
    return entries
