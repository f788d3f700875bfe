"""Reading sanctions lists into one model, :class:`ListedEntry`.

Formats: the UN Security Council consolidated list (XML) and OpenSanctions ``targets.simple.csv``
here; OFAC's SDN list (classic ``sdn.xml``), the EU consolidated financial sanctions list (XML),
the UK Sanctions List (XML) and OpenSanctions FollowTheMoney JSON lines in
:mod:`services.sanctions.formats`. Every reader streams its file (XML with ``iterparse``, each
record cleared once read; JSON and CSV line by line); a file that is not what it claims to be is
refused with a :class:`ListFileError` that says where and why, before anything is stored.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse
from pydantic import Field

from schemas.base import StrictModel


class ListFileError(ValueError):
    """The file cannot be read as the list format it was given as; the message says why."""


class ListFormat(StrEnum):
    UN_XML = "un-xml"
    OPENSANCTIONS_CSV = "opensanctions-csv"
    OFAC_SDN_XML = "ofac-sdn-xml"
    EU_XML = "eu-xml"
    UK_XML = "uk-xml"
    FTM_JSON = "ftm-json"


DEFAULT_LIST_NAMES = {
    ListFormat.UN_XML: "un-sc",
    ListFormat.OPENSANCTIONS_CSV: "opensanctions",
    ListFormat.OFAC_SDN_XML: "ofac-sdn",
    ListFormat.EU_XML: "eu-fsf",
    ListFormat.UK_XML: "uk-sanctions",
    ListFormat.FTM_JSON: "opensanctions",
}
"""The name a list gets at load when ``--list`` is not given."""

# Formats whose file says when it was made (the list's age counts from then).
_DATED_FORMATS = frozenset({ListFormat.UN_XML, ListFormat.OFAC_SDN_XML, ListFormat.EU_XML, ListFormat.UK_XML})


class Identifier(StrictModel):
    """A number that identifies a listed party whatever its name: an IMO number for a vessel."""

    kind: str = Field(description="imo (vessel IMO number, 7 digits), or the list's own type of number")
    value: str


Kind = Literal["entity", "person", "vessel", "other"]


class ListedEntry(StrictModel):
    """One listed person or entity, as stored in Redis and shown in alerts."""

    id: str = Field(description="the list's own record id (UN DATAID, OpenSanctions id)")
    reference: str = Field(description="reference number (UN KPe.016), else the record id")
    kind: Kind
    name: str
    aliases: list[str] = Field(default_factory=list)
    original_script: list[str] = Field(default_factory=list, description="names in their own script")
    previous_names: list[str] = Field(default_factory=list, description="former names (of a vessel)")
    identifiers: list[Identifier] = Field(default_factory=list, description="IMO numbers and the like")
    list_type: str | None = Field(default=None, description="UN_LIST_TYPE (DPRK) or programme ids")
    programs: list[str] = Field(
        default_factory=list, description="the programmes or regimes it is listed under"
    )
    listed_on: str | None = None
    tags: list[str] = Field(default_factory=list, description="names a rule's `lists:` can select")

    @property
    def imo_numbers(self) -> list[str]:
        return [i.value for i in self.identifiers if i.kind == "imo"]

    def names(self) -> list[str]:
        """Every name to match against: the name, aliases, names in original script, former names."""
        seen: dict[str, None] = {}
        for name in [self.name, *self.aliases, *self.original_script, *self.previous_names]:
            if name.strip():
                seen.setdefault(" ".join(name.split()), None)
        return list(seen)


class ListMeta(StrictModel):
    """A loaded list: which file, of which date, which version."""

    list: str
    format: ListFormat
    date: str = Field(description="the list's own date (UN dateGenerated; OpenSanctions latest change)")
    version: str = Field(description="date and content digest: the same file gives the same version")
    source: str
    sha256: str
    entries: int
    loaded_at: str


@dataclass(frozen=True)
class ListAge:
    """How old a loaded list is, and from which date that is counted."""

    seconds: float
    since: str  # "generated 2020-03-20" (the list's own date) or "loaded 2026-03-06"

    @property
    def days(self) -> int:
        return int(self.seconds // 86_400)


def list_age(meta: ListMeta, now: datetime | None = None) -> ListAge:
    """From the list's own date of generation where its format has one (the UN XML's
    ``dateGenerated``, OFAC's ``Publish_Date``, the EU's ``generationDate``, the UK list's
    ``DateGenerated``), else from the time it was loaded. (An OpenSanctions export says when
    its entries last changed, not when it was made: a quiet list is not an old one.)"""
    now = now or datetime.now(UTC)
    generated = _instant(meta.date) if meta.format in _DATED_FORMATS else None
    if generated is not None:
        return ListAge((now - generated).total_seconds(), f"generated {generated.date().isoformat()}")
    loaded = _instant(meta.loaded_at) or now
    return ListAge((now - loaded).total_seconds(), f"loaded {loaded.date().isoformat()}")


def too_old(meta: ListMeta, max_age: float, now: datetime | None = None) -> str | None:
    """A warning when the list is older than ``max_age`` seconds, else None."""
    age = list_age(meta, now)
    if age.seconds <= max_age:
        return None
    return (
        f"sanctions list {meta.list} is {age.days} days old ({age.since}), older than "
        f"TRADEWATCH_SANCTIONS_MAX_AGE ({max_age / 86_400:g} days): load a current one"
    )


def _instant(text: str) -> datetime | None:
    for candidate in (text.strip(), text.strip()[:10]):
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


@dataclass
class ParsedList:
    date: str
    sha256: str
    entries: list[ListedEntry] = field(default_factory=list)

    @property
    def version(self) -> str:
        return f"{self.date[:10]}-{self.sha256[:12]}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")


def regime_tags(programmes: list[str]) -> list[str]:
    """``dprk`` for an entry listed under a DPRK regime on any list (UN DPRK, OFAC DPRK, DPRK2-4,
    the EU's PRK, the UK's Democratic People's Republic of Korea, OpenSanctions' un-sc1718...), so
    one rule can select the DPRK listings of every list in force."""
    return ["dprk"] if any(_dprk(p) for p in programmes if p) else []


def _dprk(programme: str) -> bool:
    text = programme.casefold()
    if "north korea" in text or re.search(r"democratic people.?s republic of korea", text):
        return True
    words = re.split(r"[^a-z0-9]+", text)
    return any(w.startswith("dprk") or w in ("prk", "kp") or "1718" in w for w in words)


_PARENTHESIS = re.compile(r"\s*\(([^()]{1,40})\)\s*")


def split_names(raw: str) -> list[str]:
    """``DAEDONG CREDIT BANK (DCB)`` -> the name without the bracket, and ``DCB`` as its own alias."""
    name = " ".join(raw.split()).strip(" \"'")
    if not name:
        return []
    inner = [m.group(1).strip() for m in _PARENTHESIS.finditer(name)]
    if not inner:
        return [name]
    bare = " ".join(_PARENTHESIS.sub(" ", name).split())
    # A place in brackets belongs to the name: LEADER (HONG KONG) INTERNATIONAL.
    acronyms = [i for i in inner if i.replace(".", "").isupper() and " " not in i]
    return [n for n in (name, bare, *acronyms) if n]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def detect_format(path: Path) -> ListFormat:
    """The format, from the file's first bytes (its root element, its CSV header, a JSON object)."""
    from services.sanctions.formats import sniff

    return sniff(path)


def read_list(path: Path, list_name: str, fmt: ListFormat | None = None) -> ParsedList:
    if not path.is_file():
        raise ListFileError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt is ListFormat.UN_XML:
        return read_un_xml(path, list_name)
    if fmt is ListFormat.OPENSANCTIONS_CSV:
        return read_opensanctions_csv(path, list_name)
    from services.sanctions.formats import READERS

    return READERS[fmt](path, list_name)


# ---------------------------------------------------------------- UN consolidated list (XML)

_UN_RECORDS = {"INDIVIDUAL": "person", "ENTITY": "entity"}


def _text(elem: Element, tag: str) -> str:
    found = elem.find(tag)
    return " ".join((found.text or "").split()) if found is not None else ""


def _un_entry(elem: Element, list_name: str, position: int) -> ListedEntry:
    kind = _UN_RECORDS[elem.tag]
    dataid = _text(elem, "DATAID")
    where = f"{elem.tag} record {position}" + (f" (DATAID {dataid})" if dataid else "")
    if not dataid:
        raise ListFileError(f"{where}: no DATAID")
    parts = [_text(elem, t) for t in ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")]
    full = " ".join(p for p in parts if p)
    if not full:
        raise ListFileError(f"{where}: no name (FIRST_NAME to FOURTH_NAME are all empty)")
    names = split_names(full)
    aliases = names[1:]
    for alias in elem.iter(f"{elem.tag}_ALIAS"):
        for name in split_names(_text(alias, "ALIAS_NAME")):
            if name not in aliases and name != names[0]:
                aliases.append(name)
    original = [n for n in split_names(_text(elem, "NAME_ORIGINAL_SCRIPT")) if n]
    list_type = _text(elem, "UN_LIST_TYPE") or None
    tags = [list_name] + ([f"un-{_slug(list_type)}"] if list_type else [])
    tags += regime_tags([list_type or ""])
    return ListedEntry(
        id=dataid,
        reference=_text(elem, "REFERENCE_NUMBER") or dataid,
        kind=kind,
        name=names[0],
        aliases=aliases,
        original_script=original,
        list_type=list_type,
        programs=[list_type] if list_type else [],
        listed_on=_text(elem, "LISTED_ON") or None,
        tags=sorted(set(tags)),
    )


def iter_un_xml(path: Path, list_name: str) -> Iterator[ListedEntry | str]:
    """The list's date (a str, first) then each record, read as a stream."""
    position = 0
    records = xml_records(
        path, "the UN Security Council consolidated list", "CONSOLIDATED_LIST", frozenset(_UN_RECORDS)
    )
    for what, elem in records:
        if what == "root":
            generated = elem.get("dateGenerated", "").strip()
            if not re.match(r"\d{4}-\d{2}-\d{2}", generated):
                raise ListFileError(f"{path}: <CONSOLIDATED_LIST> has no dateGenerated date")
            yield generated
        elif what == "record":
            position += 1
            yield _un_entry(elem, list_name, position)


def local_name(tag: str) -> str:
    """An XML tag without its namespace: ``{http://...}sdnEntry`` -> ``sdnEntry``."""
    return tag.rsplit("}", 1)[-1]


def xml_records(
    path: Path, fmt_name: str, root: str, record: str | frozenset[str], header: frozenset[str] = frozenset()
) -> Iterator[tuple[str, Element]]:
    """A list file's XML as a stream (memory flat, no DTD or entities): ("root", element) first,
    ("header", element) for each ``header`` element outside a record, ("record", element) for
    each record (``record``: its tag, or the tags of its kinds); each record is cleared once
    handed out. Whatever is not that format is refused with the reason."""
    records_of = frozenset([record]) if isinstance(record, str) else record
    depth = 0
    seen_root = False
    records = 0
    try:
        for event, elem in iterparse(str(path), events=("start", "end"), forbid_dtd=True):
            tag = local_name(elem.tag)
            if event == "start":
                if not seen_root:
                    seen_root = True
                    if tag != root:
                        raise ListFileError(
                            f"{path}: the root element is <{tag}>, not <{root}>: this is not {fmt_name}"
                        )
                    yield "root", elem
                if tag in records_of:
                    depth += 1
                continue
            if tag in records_of:
                depth -= 1
                if depth == 0:
                    records += 1
                    yield "record", elem
                    elem.clear()
            elif depth == 0 and tag in header:
                yield "header", elem
    except ParseError as error:
        line, column = getattr(error, "position", (0, 0))
        raise ListFileError(f"{path}: not well-formed XML at line {line}, column {column}: {error}") from None
    except DefusedXmlException as error:
        raise ListFileError(f"{path}: refused: {error} (a list file has no DTD or entities)") from None
    if not seen_root:
        raise ListFileError(f"{path}: empty file")
    if records == 0:
        names = " or ".join(f"<{r}>" for r in sorted(records_of))
        raise ListFileError(f"{path}: no {names} records: is this {fmt_name}?")


def read_un_xml(path: Path, list_name: str) -> ParsedList:
    parsed = ParsedList(date="", sha256=_sha256(path))
    for item in iter_un_xml(path, list_name):
        if isinstance(item, str):
            parsed.date = item
        else:
            parsed.entries.append(item)
    return parsed


# ---------------------------------------------------------------- OpenSanctions targets.simple.csv

OPENSANCTIONS_COLUMNS = (
    "id", "schema", "name", "aliases", "birth_date", "countries", "addresses", "identifiers",
    "sanctions", "phones", "emails", "program_ids", "dataset", "first_seen", "last_seen", "last_change",
)  # fmt: skip
_REQUIRED = ("id", "schema", "name", "aliases")
_KINDS = {"Person": "person", "Organization": "entity", "Company": "entity", "LegalEntity": "entity"}


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _latin(name: str) -> bool:
    return all(c.isascii() or not c.isalpha() or "LATIN" in _uname(c) for c in name)


def _uname(char: str) -> str:
    import unicodedata

    return unicodedata.name(char, "")


def read_opensanctions_csv(path: Path, list_name: str) -> ParsedList:
    parsed = ParsedList(date="", sha256=_sha256(path))
    latest = ""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in _REQUIRED if c not in header]
            if missing:
                raise ListFileError(
                    f"{path}: not an OpenSanctions targets.simple.csv: the header lacks {', '.join(missing)} "
                    f"(found: {', '.join(header[:8]) or 'nothing'})"
                )
            for row in reader:
                line = reader.line_num
                if None in row or any(v is None for v in row.values()):
                    raise ListFileError(
                        f"{path}:{line}: the row has {'more' if None in row else 'fewer'} cells than the header"
                    )
                entry_id = (row["id"] or "").strip()
                name = (row["name"] or "").strip()
                if not entry_id or not name:
                    raise ListFileError(f"{path}:{line}: a row needs an id and a name")
                names = split_names(name)
                aliases: list[str] = []
                for alias in _split(row.get("aliases") or ""):
                    for n in split_names(alias):
                        if n not in aliases and n != names[0]:
                            aliases.append(n)
                aliases = [*names[1:], *aliases]
                original = [a for a in aliases if not _latin(a)]
                programs = _split(row.get("program_ids") or "")
                datasets = _split(row.get("dataset") or "")
                tags = {list_name, *(_slug(p) for p in programs), *regime_tags(programs)}
                changed = (row.get("last_change") or row.get("last_seen") or "").strip()
                latest = max(latest, changed)
                parsed.entries.append(
                    ListedEntry(
                        id=entry_id,
                        reference=entry_id,
                        kind=_KINDS.get((row["schema"] or "").strip(), "other"),
                        name=names[0],
                        aliases=[a for a in aliases if a not in original],
                        original_script=original,
                        list_type=";".join(programs or datasets) or None,
                        programs=programs,
                        listed_on=(row.get("first_seen") or "")[:10] or None,
                        tags=sorted(tags),
                    )
                )
    except UnicodeDecodeError as error:
        raise ListFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise ListFileError(f"{path}: not readable as CSV: {error}") from None
    if not parsed.entries:
        raise ListFileError(f"{path}: no rows")
    parsed.date = latest[:19] or "undated"
    return parsed
