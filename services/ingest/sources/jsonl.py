"""JSON Lines of ImportReport documents, one per line (``--source jsonl``).

A line without ``report_id`` gets one from its content, so the same line is the same report.
Blank lines and lines starting with ``#`` are skipped. A bad line is rejected on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from schemas.report import ImportReport
from services.ingest.publisher import content_id
from services.ingest.sources import Parsed, Rejection, json_object_line, open_checked
from services.wire import describe_validation

MAX_LINE_BYTES = 1_000_000


class JsonlSource:
    name = "jsonl"

    def __init__(
        self,
        source_name: str = "jsonl",
        max_line_bytes: int = MAX_LINE_BYTES,
        max_file_bytes: int = 2_000_000_000,
    ) -> None:
        self.source_name = source_name
        self.max_line_bytes = max_line_bytes
        self.max_file_bytes = max_file_bytes
        self.position = 0

    def read(self, path: Path) -> Iterator[Parsed]:
        with open_checked(path, self.max_file_bytes, "utf-8-sig", "JSON Lines") as handle:
            for number, raw in enumerate(handle, start=1):
                self.position += len(raw)
                yield from self.parse_line(raw, f"{path.name}:{number}")

    def parse_line(self, raw: bytes, where: str) -> Iterator[Parsed]:
        document = json_object_line(raw, where, "utf-8-sig", self.max_line_bytes)
        if document is None:
            return
        if isinstance(document, Rejection):
            yield document
            return
        text = raw.decode("utf-8-sig").strip()
        document.setdefault("source", self.source_name)
        if not document.get("report_id"):
            document["report_id"] = content_id(str(document["source"]), document)
        try:
            yield ImportReport.model_validate(document)
        except ValidationError as error:
            yield Rejection(where, text, describe_validation(error))
