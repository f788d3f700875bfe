"""HS codes as people write them."""

from __future__ import annotations


def hs_display(code: str | None) -> str | None:
    """``842952`` -> ``8429.52``; ``84589100`` -> ``8458.91.00``; chapters and headings as they are."""
    if not code:
        return None
    code = code.replace(".", "")
    if len(code) <= 4:
        return code
    return ".".join([code[:4], *(code[i : i + 2] for i in range(4, len(code), 2))])
