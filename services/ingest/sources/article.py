"""News reports and field notes (``--source article``): free text in, one report out.

The text (plain, or HTML stripped to its text) becomes a report whose items are the machines and
goods it names, with the crossings, countries, prices and markers beside them, found by the
extractor every stage shares (``services.goods.extract``: the rules stage reads the text of a
report without items with it too). Each item's description holds the words that named it; the
markers and prices found head the report text in a summary line, which the rules stage reads.
Pure: no I/O (``read`` aside), no clock.
"""

from __future__ import annotations

import hashlib
import html.parser
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from services.goods.extract import Extraction, Extractor, FoundItem
from services.ingest.sources import Parsed, Rejection, UnreadableFile
from services.money import find_prices
from services.textmatch import normalise
from services.wire import describe_validation

__all__ = [
    "ArticleSource",
    "Extraction",
    "Extractor",
    "FoundItem",
    "article_id",
    "find_prices",
    "html_to_text",
]

MAX_ARTICLE_BYTES = 5_000_000

# --- HTML


class _TextOfHtml(html.parser.HTMLParser):
    BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "article",
            "section",
            "header",
            "footer",
            "blockquote",
            "pre",
            "title",
            "td",
        ]
    )
    SKIP = frozenset(["script", "style", "noscript", "template", "svg", "head", "nav", "form"])

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> tuple[str, str]:
    """(title, text): the text of the page, one paragraph a line; scripts, styles, nav dropped."""
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return " ".join("".join(parser.title).split()), "\n".join(line for line in lines if line)


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:1000].lower()
    return head.startswith(("<!doctype html", "<html")) or bool(
        re.search(r"<(p|div|body|article)[\s>]", head)
    )


def article_id(source: str, text: str) -> str:
    """The same text (whitespace and case aside) is the same article: the same report id."""
    key = " ".join(normalise(text).split())
    return f"{source}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


class ArticleSource:
    """One article from a text or HTML file (``--source article``): one report."""

    name = "article"

    def __init__(
        self, extractor: Extractor, label: str = "article", max_bytes: int = MAX_ARTICLE_BYTES
    ) -> None:
        self.extractor = extractor
        self.label = label
        self.max_bytes = max_bytes
        self.position = 0

    def read(self, path: Path) -> Iterator[Parsed]:
        try:
            size = path.stat().st_size
        except OSError as error:
            raise UnreadableFile(f"{path}: cannot be read: {error.strerror}") from None
        if size > self.max_bytes:
            raise UnreadableFile(f"{path}: {size} bytes, over the limit of {self.max_bytes} for an article")
        raw = path.read_bytes()
        self.position = len(raw)
        if b"\x00" in raw:
            raise UnreadableFile(f"{path}: binary content (NUL byte), not a text or HTML article")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise UnreadableFile(
                f"{path}: not UTF-8 text (byte {error.start}); save the article as UTF-8"
            ) from None
        title = ""
        if path.suffix.lower() in (".html", ".htm") or looks_like_html(text):
            title, text = html_to_text(text)
        if not text.strip():
            raise UnreadableFile(f"{path}: no text in it")
        try:
            yield self.extractor.report(text, self.label, article_id(self.label, text), title=title)
        except ValidationError as error:
            yield Rejection(path.name, raw[:64_000], describe_validation(error))
