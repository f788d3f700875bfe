"""JSON Lines of ImportReport documents, one per line (``--source jsonl``).

A line without ``report_id`` gets one from its content, so the same line is the same report.
Blank lines and lines starting with ``#`` are skipped. A bad line is rejected on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from schemas.report import ImportReport
from services.ingest.publisher import content_id
from services.ingest.sources import Parsed, Rejection, UnreadableFile
from services.wire import describe_validation

MAX_LINE_BYTES = 1_000_000


class JsonlSource:
    name = "jsonl"

    def __init__(self, source_name: str = "jsonl", max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.source_name = source_name
        self.max_line_bytes = max_line_bytes

    def read(self, path: Path) -> Iterator[Parsed]:
        try:
            handle = path.open("rb")
        except OSError as error:
            raise UnreadableFile(f"{path}: cannot be opened: {error.strerror}") from None
        with handle:
            head = handle.read(8192)
            if b"\x00" in head:
                raise UnreadableFile(f"{path}: binary content (NUL byte), not JSON Lines")
            handle.seek(0)
            for number, raw in enumerate(handle, start=1):
                yield from self.parse_line(raw, f"{path.name}:{number}")

    def parse_line(self, raw: bytes, where: str) -> Iterator[Parsed]:
        if len(raw) > self.max_line_bytes:
            yield Rejection(
                where,
                raw[:1000],
                f"line is {len(raw)} bytes, over the limit of {self.max_line_bytes}",
            )
            return
        try:
            text = raw.decode("utf-8-sig").strip()
        except UnicodeDecodeError as error:
            yield Rejection(where, raw, f"not UTF-8 (byte {error.start})")
            return
        if not text or text.startswith("#"):
            return
        try:
            document = json.loads(text)
        except ValueError as error:
            yield Rejection(where, text, f"not JSON: {error}")
            return
        except RecursionError:  # [[[[...]]]] thousands deep: a rejection, not a crash
            yield Rejection(where, text[:1000], "not a report: JSON nested too deeply")
            return
        if not isinstance(document, dict):
            yield Rejection(where, text, f"expected a JSON object, got {type(document).__name__}")
            return
        document.setdefault("source", self.source_name)
        if not document.get("report_id"):
            document["report_id"] = content_id(str(document["source"]), document)
        try:
            yield ImportReport.model_validate(document)
        except ValidationError as error:
            yield Rejection(where, text, describe_validation(error))
