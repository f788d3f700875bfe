"""Durations as people write them in settings and YAML: ``90s``, ``15m``, ``2h``, ``7d``, ``1w``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds in a duration; a bare number is seconds. Raises ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, e.g. 30s, 15m, 2h, 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(
            f"{value!r} is not a duration: write a number with a unit (ms, s, m, h, d, w), e.g. 15m or 7d"
        )
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds, accepting ``7d``-style strings."""
