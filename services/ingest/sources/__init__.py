"""One module per source; each turns raw input into reports or rejections, lazily (streamed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from schemas.report import ImportReport


@dataclass(frozen=True, slots=True)
class Rejection:
    """Input that could not become a report: where it was, the raw data, why."""

    where: str
    raw: bytes | str
    reason: str


Parsed = ImportReport | Rejection


class FileSource(Protocol):
    name: str

    def read(self, path: Path) -> Iterator[Parsed]: ...


class UnreadableFile(Exception):
    """The whole file cannot be read (binary, wrong encoding, missing): nothing in it is used."""
