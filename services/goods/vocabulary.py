"""The names the catalog knows: crossings and categories, checked with a suggestion when misspelt.

A rule or a silence naming a crossing or a category the catalog does not know could never match
(a report's crossing is compared under its catalog name, an item's categories come from the
catalog), so such a value is refused with what it may have meant.
"""

from __future__ import annotations

import difflib

from services.goods.catalog import Catalog
from services.textmatch import fold_key


def _listed(names: list[str], last: str = "or") -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def crossing(catalog: Catalog, value: str) -> str:
    """The catalog's name of the crossing ``value`` names (``Hunchun`` -> ``Hunchun-Rason (Wonjong-ri)``).

    ValueError, with a sentence and suggestions, when it names none or several.
    """
    known = list(catalog.file.crossings)
    name = catalog.crossing_name(value)
    if name in catalog.file.crossings:
        return name
    if not known:
        raise ValueError(
            f"{value!r} can never match: the catalog names no crossings (add them under crossings: in it)"
        )
    named = catalog.crossings_in(value)
    if len(named) > 1:
        raise ValueError(
            f"{value!r} names {len(named)} crossings ({_listed(named, 'and')}): give one per entry"
        )
    terms: dict[str, str] = {}
    for canonical, spelled in catalog.file.crossings.items():
        terms.setdefault(fold_key(canonical), canonical)
        for _, term in spelled.all():
            terms.setdefault(fold_key(term), canonical)
    close = difflib.get_close_matches(fold_key(value), list(terms), n=5, cutoff=0.6)
    meant = list(dict.fromkeys(terms[c] for c in close))[:2]
    hint = f"did you mean {_listed(meant)}?" if meant else f"the crossings are {', '.join(known)}"
    raise ValueError(f"{value!r} is not a crossing the catalog knows; {hint}")


def category(catalog: Catalog, value: str) -> str:
    """``value`` when the catalog has that category; ValueError with a suggestion otherwise."""
    if value in catalog.categories:
        return value
    known = sorted(catalog.categories)
    close = difflib.get_close_matches(value, known, n=2, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(value.strip().lower().replace(" ", "-"), known, n=2, cutoff=0.6)
    hint = f"did you mean {_listed(close)}?" if close else f"the categories are {', '.join(known)}"
    raise ValueError(f"{value!r} is not a category of the catalog; {hint}")
