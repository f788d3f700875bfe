"""One module per source; each turns raw input into reports or rejections, lazily (streamed)."""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from schemas.report import ImportReport

HEAD_BYTES = 65_536
"""How much of a file is checked up front for binary content and its encoding."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Input that could not become a report: where it was, the raw data, why."""

    where: str
    raw: bytes | str
    reason: str


Parsed = ImportReport | Rejection


class FileSource(Protocol):
    name: str
    position: int
    """Bytes of the file consumed so far (for a progress bar)."""

    def read(self, path: Path) -> Iterator[Parsed]: ...


class UnreadableFile(Exception):
    """The whole file cannot be read (binary, wrong encoding, missing): nothing in it is used."""


def open_checked(path: Path, max_bytes: int, encoding: str = "utf-8", what: str = "text") -> BinaryIO:
    """Open a file for streaming after refusing what cannot be read: missing, oversized, binary
    content or another encoding than the one expected (checked on the first 64 KiB).

    The handle is positioned at the start; the caller closes it.
    """
    try:
        size = path.stat().st_size
    except OSError as error:
        raise UnreadableFile(f"{path}: cannot be read: {error.strerror}") from None
    if size > max_bytes:
        raise UnreadableFile(
            f"{path}: {size} bytes, over the limit of {max_bytes} (TRADEWATCH_MAX_FILE_BYTES)"
        )
    try:
        handle = path.open("rb")
    except OSError as error:
        raise UnreadableFile(f"{path}: cannot be opened: {error.strerror}") from None
    head = handle.read(HEAD_BYTES)
    if b"\x00" in head:
        handle.close()
        hint = " (UTF-16 text? save it as UTF-8)" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise UnreadableFile(f"{path}: binary content (NUL byte), not {what}{hint}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        handle.close()
        raise UnreadableFile(f"{path}: unknown encoding {encoding!r}") from None
    # One bad line is that line's problem (rejected on its own); a file whose lines mostly fail
    # to decode is in another encoding, and is refused whole.
    lines = head.split(b"\n")
    if len(head) == HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut in the middle of a character
    failed = 0
    first = 0
    for offset, line in _offsets(lines):
        try:
            line.decode(encoding)
        except UnicodeDecodeError as error:
            first = first or offset + error.start + 1
            failed += 1
    if failed * 2 > len(lines) or (failed and len(lines) == 1):
        handle.close()
        raise UnreadableFile(
            f"{path}: not {encoding} text (byte {first - 1}, {failed} of the first {len(lines)} lines);"
            " convert it to UTF-8 or set the encoding of its source in config/sources.yaml"
        )
    handle.seek(0)
    return handle


def _offsets(lines: list[bytes]) -> Iterator[tuple[int, bytes]]:
    offset = 0
    for line in lines:
        yield offset, line
        offset += len(line) + 1


_ID_UNSAFE = re.compile(r"[^\w.:\-]+")


def external_id(source: str, parts: list[str]) -> str:
    """``comtrade-156:408:X:202601:847710``: readable when short and safe, hashed otherwise."""
    key = ":".join(_ID_UNSAFE.sub("_", p.strip()) for p in parts)
    candidate = f"{source}-{key}"
    if len(candidate) <= 200:
        return candidate
    return f"{source}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def json_object_line(
    raw: bytes, where: str, encoding: str, max_bytes: int
) -> dict[str, Any] | Rejection | None:
    """One line of a JSON Lines file as a JSON object, a Rejection saying why not, or None for a
    blank or ``#`` comment line."""
    if len(raw) > max_bytes:
        return Rejection(where, raw[:1000], f"line is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        text = raw.decode(encoding).strip()
    except UnicodeDecodeError as error:
        name = "UTF-8" if encoding.startswith("utf-8") else encoding
        return Rejection(where, raw, f"not {name} (byte {error.start})")
    if not text or text.startswith("#"):
        return None
    try:
        document = json.loads(text)
    except ValueError as error:
        return Rejection(where, text, f"not JSON: {error}")
    except RecursionError:  # [[[[...]]]] thousands deep: a rejection, not a crash
        return Rejection(where, text[:1000], "not a report: JSON nested too deeply")
    if not isinstance(document, dict):
        return Rejection(where, text, f"expected a JSON object, got {type(document).__name__}")
    return document
