"""Which sources exist and how a file finds its source: built-ins plus ``config/sources.yaml``.

Built-in sources: ``jsonl`` (ImportReport documents), ``comtrade`` and ``china-customs``
(tables through built-in mappings), ``article`` (a news report as text or HTML). The file adds
table mappings (``tables:``), inbox rules (``inbox:``) and news feeds (``feeds:``); it is
checked strictly, every problem with its file and line, and a missing file at the default path
just means no additions.

A file in the inbox finds its source by, in order: its folder (``inbox/<source>/file``), the
first ``inbox:`` rule whose pattern matches its name, its extension (``.jsonl``/``.ndjson`` ->
jsonl, ``.txt``/``.html``/``.htm`` -> article). A ``.csv`` has no default: a table's columns
say nothing about which mapping fits, so it needs a folder or a rule.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from schemas.base import StrictModel
from schemas.durations import Duration
from services.goods.catalog import Catalog, load_catalog
from services.ingest.sources import FileSource
from services.ingest.sources.article import ArticleSource, Extractor
from services.ingest.sources.jsonl import JsonlSource
from services.ingest.sources.table import TableMapping, TableSource
from services.money import Rates, load_rates
from services.settings import Settings
from services.yamlfile import ConfigError, Problem, load

BUILTIN = ("jsonl", "comtrade", "china-customs", "article")

EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "article",
    ".text": "article",
    ".html": "article",
    ".htm": "article",
}

_NAME = r"^[a-z0-9][a-z0-9\-]{0,40}$"


class InboxRule(StrictModel):
    pattern: str = Field(min_length=1, description='file name pattern, e.g. "comtrade-*.csv"')
    source: str


class Feed(StrictModel):
    name: str = Field(pattern=_NAME, description="also the reports' source and the start of their ids")
    url: str = Field(pattern=r"^https?://\S+$")
    interval: Duration = Field(default=900.0, ge=1.0, description="time between polls (at least 1s)")
    timeout: Duration = Field(default=20.0, gt=0)
    max_bytes: int = Field(default=5_000_000, ge=1_000, description="largest feed document accepted")


class SourcesFile(StrictModel):
    version: Literal[1] = 1
    tables: dict[str, TableMapping] = Field(default_factory=dict)
    inbox: list[InboxRule] = Field(default_factory=list)
    feeds: list[Feed] = Field(default_factory=list)


def load_sources_file(path: Path, *, must_exist: bool = False) -> SourcesFile:
    if not path.exists() and not must_exist:
        return SourcesFile()
    doc = load(path)
    if doc.data is None:
        return SourcesFile()
    parsed = doc.validate(SourcesFile)
    problems = []
    for name in parsed.tables:
        if name in BUILTIN:
            problems.append(
                Problem(doc.file, doc.line_of(("tables", name)), f"{name!r} is a built-in source")
            )
        elif not re.match(_NAME, name):
            problems.append(
                Problem(doc.file, doc.line_of(("tables", name)), f"source name {name!r}: use a-z, 0-9 and -")
            )
    known = set(BUILTIN) | set(parsed.tables)
    for index, rule in enumerate(parsed.inbox):
        if rule.source not in known:
            problems.append(
                Problem(
                    doc.file,
                    doc.line_of(("inbox", index, "source")),
                    f"inbox.{index}.source: unknown source {rule.source!r} (known: {', '.join(sorted(known))})",
                )
            )
    seen: set[str] = set()
    for index, feed in enumerate(parsed.feeds):
        if feed.name in seen:
            problems.append(
                Problem(
                    doc.file, doc.line_of(("feeds", index, "name")), f"feed {feed.name!r} is listed twice"
                )
            )
        seen.add(feed.name)
    if problems:
        raise ConfigError(problems)
    return parsed


@dataclass
class Sources:
    """Every source by name, ready to read files; built once per process from the settings."""

    settings: Settings
    config: SourcesFile
    rates: Rates
    catalog: Catalog
    tables: dict[str, TableMapping] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sources:
        """Raises ConfigError listing every problem in the sources file, catalog and rates."""
        problems: list[Problem] = []
        config = SourcesFile()
        try:
            config = load_sources_file(
                settings.sources_file,
                must_exist="sources_file" in settings.model_fields_set,
            )
        except ConfigError as error:
            problems += error.problems
        try:
            rates = load_rates(settings.rates_file)
        except ConfigError as error:
            problems += error.problems
        try:
            catalog = load_catalog(settings.catalog_file)
        except ConfigError as error:
            problems += error.problems
        if problems:
            raise ConfigError(problems)
        from services.ingest.sources import china_customs, comtrade

        tables = {"comtrade": comtrade.MAPPING, "china-customs": china_customs.MAPPING, **config.tables}
        return cls(settings, config, rates, catalog, tables)

    def names(self) -> list[str]:
        return sorted({*BUILTIN, *self.tables})

    def extractor(self) -> Extractor:
        return Extractor(self.catalog, self.rates)

    def get(self, name: str) -> FileSource:
        """A fresh reader for one file; ValueError for an unknown name."""
        limit = self.settings.max_file_bytes
        if name == "jsonl":
            return JsonlSource(max_file_bytes=limit)
        if name == "article":
            return ArticleSource(self.extractor())
        if name in self.tables:
            return TableSource(name, self.tables[name], self.rates, max_file_bytes=limit)
        raise ValueError(f"unknown source {name!r}; known: {', '.join(self.names())}")

    def for_path(self, path: Path, inbox: Path | None = None) -> str | None:
        """The source of a file dropped in the inbox (see the module's note), or None."""
        if inbox is not None and path.parent != inbox and path.parent.name in self.names():
            return path.parent.name
        for rule in self.config.inbox:
            if fnmatch.fnmatch(path.name, rule.pattern):
                return rule.source
        return EXTENSIONS.get(path.suffix.lower())
