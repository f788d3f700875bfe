"""More list formats: OFAC's SDN list, the EU and UK lists, OpenSanctions FollowTheMoney JSON.

- **OFAC SDN** (classic ``sdn.xml``): ``sdnList/sdnEntry`` with ``uid``, ``lastName``/``firstName``,
  ``sdnType`` (Individual, Entity, Vessel, Aircraft), ``programList/program``, ``akaList/aka``
  (``a.k.a.`` names are aliases, ``f.k.a.`` former names; weak ones are left out, as OFAC does
  not require them to be screened), ``idList/id`` (``idType`` "Vessel Registration
  Identification" with ``idNumber`` "IMO 8660313"); the list's date is ``Publish_Date``.
- **EU consolidated financial sanctions list** (``xmlFullSanctionsList_1_1``): ``export`` (with
  ``generationDate``) of ``sanctionEntity`` records: ``nameAlias/@wholeName``, ``subjectType``,
  ``identification`` (``identificationTypeCode`` ``imo``), ``regulation`` (``programme``,
  ``publicationDate``: the earliest is the listing date), ``@euReferenceNumber``,
  ``@unitedNationId``.
- **UK Sanctions List** (the FCDO's XML, the one UK list since OFSI's consolidated list closed in
  January 2026): ``Designations/Designation`` with ``UniqueID``, ``Names/Name`` (``Name1``..
  ``Name6``, ``NameType``), ``NonLatinNames``, ``RegimeName``, ``IndividualEntityShip``,
  ``DateDesignated`` (dd/mm/yyyy), ``ShipDetails/Ship/IMONumbers/IMONumber``.
- **FollowTheMoney JSON lines** (OpenSanctions' ``entities.ftm.json``): one entity a line,
  ``schema`` and ``properties`` (``name``, ``alias``, ``previousName``, ``imoNumber``, ``program``,
  ``programId``, ``topics``, ``createdAt``); ``Sanction`` entities lend their programme and listing
  date to the entity they name.

Each reads its file as a stream (XML by ``iterparse``, a record cleared once read; JSON line by
line) into :class:`ListedEntry`, and refuses a file that is not in its format with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from xml.etree.ElementTree import Element

from services.sanctions.lists import (
    Identifier,
    Kind,
    ListedEntry,
    ListFileError,
    ListFormat,
    ParsedList,
    _latin,
    _sha256,
    _slug,
    local_name,
    regime_tags,
    split_names,
    xml_records,
)
from services.sanctions.vessels import imo_digits

# ---------------------------------------------------------------- telling formats apart

_ROOTS = {
    "CONSOLIDATED_LIST": ListFormat.UN_XML,
    "sdnList": ListFormat.OFAC_SDN_XML,
    "export": ListFormat.EU_XML,
    "Designations": ListFormat.UK_XML,
}
_ROOT = re.compile(r"<(?![?!])([\w:.-]+)")
_XML_PROLOGUE = re.compile(r"^(?:\s*<\?.*?\?>|\s*<!--.*?-->|\s*<!DOCTYPE[^>]*>)*", re.S)


def sniff(path: Path) -> ListFormat:
    """The format of a list file, from its first bytes."""
    if not path.is_file():
        raise ListFileError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(8192)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text:
        raise ListFileError(f"{path}: empty file")
    if text.startswith("<"):
        found = _ROOT.search(_XML_PROLOGUE.sub("", text, count=1))
        root = local_name(found.group(1).split(":")[-1]) if found else ""
        if root in _ROOTS:
            return _ROOTS[root]
        raise ListFileError(
            f"{path}: an XML file whose root element <{root or '?'}> is none of the lists read "
            "(<CONSOLIDATED_LIST> UN, <sdnList> OFAC SDN, <export> EU, <Designations> UK)"
        )
    if text.startswith("{"):
        first = text.split("\n", 1)[0]
        if '"schema"' in first:
            return ListFormat.FTM_JSON
        raise ListFileError(f"{path}: a JSON file without a FollowTheMoney 'schema': not entities.ftm.json")
    header = [c.strip().strip('"').casefold() for c in text.split("\n", 1)[0].split(",")]
    if {"id", "schema", "name"} <= set(header):
        return ListFormat.OPENSANCTIONS_CSV
    if "name 6" in header or "group id" in header:
        raise ListFileError(
            f"{path}: this looks like OFSI's consolidated list CSV, which closed in January 2026: "
            "load the UK Sanctions List XML (--format uk-xml)"
        )
    raise ListFileError(
        f"{path}: cannot tell the format from the content; give --format "
        + ", ".join(f.value for f in ListFormat)
    )


def _child(elem: Element, name: str) -> Element | None:
    for child in elem:
        if local_name(child.tag) == name:
            return child
    return None


def _children(elem: Element, name: str) -> list[Element]:
    return [child for child in elem if local_name(child.tag) == name]


def _descendants(elem: Element, name: str) -> list[Element]:
    return [e for e in elem.iter() if local_name(e.tag) == name]


def _text(elem: Element | None, name: str | None = None) -> str:
    if elem is not None and name is not None:
        elem = _child(elem, name)
    return " ".join((elem.text or "").split()) if elem is not None else ""


def _day(text: str, day_first: bool = False, month_first: bool = False) -> str | None:
    """``2018-03-30``, ``30/03/2018`` (day first) or ``03/30/2018`` (month first) as ISO."""
    text = text.strip()
    if not text:
        return None
    if re.match(r"\d{4}-\d{2}-\d{2}", text):
        return text[:10]
    parts = re.match(r"(\d{1,2})/(\d{1,2})/(\d{4})$", text)
    if parts and (day_first or month_first):
        a, b, year = (int(p) for p in parts.groups())
        day, month = (a, b) if day_first else (b, a)
        try:
            return datetime(year, month, day).date().isoformat()
        except ValueError:
            return None
    return None


def _add(names: list[str], raw: str, exclude: list[str] | None = None) -> None:
    for name in split_names(raw):
        if name not in names and (exclude is None or name not in exclude):
            names.append(name)


def _entry(
    *,
    entry_id: str,
    reference: str,
    kind: Kind,
    names: list[str],
    previous: list[str],
    identifiers: list[Identifier],
    programs: list[str],
    listed_on: str | None,
    list_name: str,
    prefix: str,
    where: str,
) -> ListedEntry:
    names = [n for n in names if n.strip()]
    if not names and previous:
        names = [previous[0]]
    if not names:
        raise ListFileError(f"{where}: no name")
    latin = [n for n in names if _latin(n)]
    primary = (latin or names)[0]
    original = [n for n in names if not _latin(n) and n != primary]
    tags = {list_name, *(f"{prefix}-{_slug(p)}" for p in programs if _slug(p)), *regime_tags(programs)}
    if kind != "person" and any(i.kind == "imo" for i in identifiers):
        kind = "vessel"  # the EU lists a ship as an enterprise with an IMO number
    return ListedEntry(
        id=entry_id,
        reference=reference,
        kind=kind,
        name=primary,
        aliases=[n for n in latin if n != primary],
        original_script=original,
        previous_names=[p for p in previous if p not in names],
        identifiers=identifiers,
        list_type=";".join(programs) or None,
        programs=programs,
        listed_on=listed_on,
        tags=sorted(tags),
    )


def _imo(raw: str) -> Identifier | None:
    digits = imo_digits(raw)
    return Identifier(kind="imo", value=digits) if digits else None


# ---------------------------------------------------------------- OFAC SDN (classic sdn.xml)

_SDN_KINDS: dict[str, Kind] = {
    "individual": "person",
    "entity": "entity",
    "vessel": "vessel",
    "aircraft": "other",
}


def _sdn_name(elem: Element) -> str:
    last, first = _text(elem, "lastName"), _text(elem, "firstName")
    return f"{last}, {first}" if last and first else last or first


def read_ofac_sdn_xml(path: Path, list_name: str) -> ParsedList:
    parsed = ParsedList(date="", sha256=_sha256(path))
    fmt = "OFAC's SDN list (sdn.xml)"
    header = frozenset({"Publish_Date"})
    for what, elem in xml_records(path, fmt, "sdnList", "sdnEntry", header):
        if what == "header":
            parsed.date = _day(_text(elem), month_first=True) or parsed.date
            continue
        if what != "record":
            continue
        uid = _text(elem, "uid")
        where = f"{path}: sdnEntry {len(parsed.entries) + 1}" + (f" (uid {uid})" if uid else "")
        if not uid:
            raise ListFileError(f"{where}: no uid")
        kind = _SDN_KINDS.get(_text(elem, "sdnType").casefold(), "other")
        names: list[str] = []
        _add(names, _sdn_name(elem))
        previous: list[str] = []
        for aka in _descendants(elem, "aka"):
            if _text(aka, "category").casefold() == "weak":
                continue
            if _text(aka, "type").casefold().startswith(("f.k.a", "fka", "formerly")):
                _add(previous, _sdn_name(aka))
            else:
                _add(names, _sdn_name(aka))
        identifiers = []
        for id_ in _descendants(elem, "id"):
            id_type, number = _text(id_, "idType"), _text(id_, "idNumber")
            if ("vessel" in id_type.casefold() or "imo" in id_type.casefold()) and (imo := _imo(number)):
                identifiers.append(imo)
        programs = [_text(p) for p in _descendants(elem, "program") if _text(p)]
        parsed.entries.append(
            _entry(
                entry_id=uid,
                reference=f"OFAC-{uid}",
                kind=kind,
                names=names,
                previous=previous,
                identifiers=identifiers,
                programs=programs,
                listed_on=None,  # the classic SDN file gives no designation dates
                list_name=list_name,
                prefix="ofac",
                where=where,
            )
        )
    parsed.date = parsed.date or "undated"
    return parsed


# ---------------------------------------------------------------- EU consolidated list (FSF XML)

_EU_KINDS: dict[str, Kind] = {"person": "person", "enterprise": "entity"}


def read_eu_xml(path: Path, list_name: str) -> ParsedList:
    parsed = ParsedList(date="", sha256=_sha256(path))
    fmt = "the EU consolidated financial sanctions list (export/sanctionEntity)"
    for what, elem in xml_records(path, fmt, "export", "sanctionEntity"):
        if what == "root":
            parsed.date = elem.get("generationDate", "").strip()
            continue
        ref = (elem.get("euReferenceNumber") or "").strip()
        logical = (elem.get("logicalId") or "").strip()
        where = f"{path}: sanctionEntity {len(parsed.entries) + 1}" + (
            f" ({ref or logical})" if ref or logical else ""
        )
        if not ref and not logical:
            raise ListFileError(f"{where}: neither euReferenceNumber nor logicalId")
        subject = _child(elem, "subjectType")
        kind = (
            _EU_KINDS.get((subject.get("code") or "").casefold(), "other") if subject is not None else "other"
        )
        names: list[str] = []
        for alias in _children(elem, "nameAlias"):
            whole = (alias.get("wholeName") or "").strip() or " ".join(
                p for p in (alias.get(k, "").strip() for k in ("firstName", "middleName", "lastName")) if p
            )
            _add(names, whole)
        identifiers: list[Identifier] = []
        for ident in _children(elem, "identification"):
            code = (ident.get("identificationTypeCode") or "").casefold()
            number = ident.get("number") or ident.get("latinNumber") or ""
            if code == "imo" and (imo := _imo(number)):
                identifiers.append(imo)
        if un := (elem.get("unitedNationId") or "").strip():
            identifiers.append(Identifier(kind="un", value=un))
        programs: list[str] = []
        published: list[str] = []
        for regulation in _children(elem, "regulation"):
            if (programme := (regulation.get("programme") or "").strip()) and programme not in programs:
                programs.append(programme)
            if day := _day(regulation.get("publicationDate") or ""):
                published.append(day)
        parsed.entries.append(
            _entry(
                entry_id=ref or logical,
                reference=ref or f"EU-{logical}",
                kind=kind,
                names=names,
                previous=[],
                identifiers=identifiers,
                programs=programs,
                listed_on=min(published) if published else _day(elem.get("designationDate") or ""),
                list_name=list_name,
                prefix="eu",
                where=where,
            )
        )
    if not re.match(r"\d{4}-\d{2}-\d{2}", parsed.date):
        raise ListFileError(f"{path}: <export> has no generationDate date")
    return parsed


# ---------------------------------------------------------------- UK Sanctions List (FCDO XML)

_UK_KINDS: dict[str, Kind] = {"individual": "person", "entity": "entity", "ship": "vessel"}
_UK_DATES = frozenset({"DateGenerated", "PublicationDate", "ExportDate"})


def read_uk_xml(path: Path, list_name: str) -> ParsedList:
    parsed = ParsedList(date="", sha256=_sha256(path))
    fmt = "the UK Sanctions List (Designations/Designation)"
    latest = ""
    for what, elem in xml_records(path, fmt, "Designations", "Designation", _UK_DATES):
        if what == "root":
            parsed.date = (elem.get("DateGenerated") or elem.get("dateGenerated") or "").strip()
            continue
        if what == "header":
            value = _text(elem)
            parsed.date = parsed.date or (
                value if re.match(r"\d{4}-", value) else _day(value, day_first=True) or ""
            )
            continue
        unique = _text(elem, "UniqueID")
        where = f"{path}: Designation {len(parsed.entries) + 1}" + (f" ({unique})" if unique else "")
        if not unique:
            raise ListFileError(f"{where}: no UniqueID")
        kind = _UK_KINDS.get(_text(elem, "IndividualEntityShip").casefold(), "other")
        names: list[str] = []
        previous: list[str] = []
        for name in _descendants(elem, "Name"):
            if _child(name, "NameType") is None:
                continue  # <Name> inside <Name>: the whole name, read with its parts below
            whole = _text(name, "Name") or " ".join(
                p for p in (_text(name, f"Name{i}") for i in range(1, 7)) if p
            )
            name_type = _text(name, "NameType").casefold()
            _add(previous if ("previous" in name_type or "former" in name_type) else names, whole)
        for non_latin in _descendants(elem, "NameNonLatinScript"):
            _add(names, _text(non_latin))
        identifiers = [imo for n in _descendants(elem, "IMONumber") if (imo := _imo(_text(n)))]
        if un := _text(elem, "UNReferenceNumber"):
            identifiers.append(Identifier(kind="un", value=un))
        regime = _text(elem, "RegimeName")
        designated = _day(_text(elem, "DateDesignated"), day_first=True)
        updated = _day(_text(elem, "LastUpdated"), day_first=True) or ""
        latest = max(latest, updated, designated or "")
        parsed.entries.append(
            _entry(
                entry_id=unique,
                reference=unique,
                kind=kind,
                names=names,
                previous=previous,
                identifiers=identifiers,
                programs=[regime] if regime else [],
                listed_on=designated,
                list_name=list_name,
                prefix="uk",
                where=where,
            )
        )
    parsed.date = parsed.date or latest or "undated"
    return parsed


# ---------------------------------------------------------------- FollowTheMoney JSON lines

_FTM_KINDS: dict[str, Kind] = {
    "Person": "person",
    "Organization": "entity",
    "Company": "entity",
    "LegalEntity": "entity",
    "PublicBody": "entity",
    "Vessel": "vessel",
    "Airplane": "other",
}


def _values(props: dict[str, object], key: str) -> list[str]:
    raw = props.get(key) or []
    if not isinstance(raw, list):
        raw = [raw]
    return [" ".join(v.split()) for v in raw if isinstance(v, str) and v.strip()]


def read_ftm_json(path: Path, list_name: str) -> ParsedList:
    parsed = ParsedList(date="", sha256=_sha256(path))
    latest = ""
    # Sanction entities name the entity they are about, before or after it: kept by its id.
    sanctions: dict[str, tuple[list[str], list[str]]] = {}
    position: dict[str, int] = {}
    lines = 0
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                lines += 1
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ListFileError(
                        f"{path}:{number}: not a JSON object ({error.msg} at column {error.colno}): "
                        "entities.ftm.json has one entity a line"
                    ) from None
                if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
                    raise ListFileError(f"{path}:{number}: a line without a FollowTheMoney 'schema'")
                props = data.get("properties")
                if not isinstance(props, dict):
                    raise ListFileError(f"{path}:{number}: an entity without 'properties'")
                schema = data["schema"]
                entity_id = str(data.get("id") or "").strip()
                if not entity_id:
                    raise ListFileError(f"{path}:{number}: an entity without an id")
                latest = max(latest, str(data.get("last_change") or ""))
                if schema == "Sanction":
                    programs = _values(props, "programId") or _values(props, "program")
                    dates = _values(props, "listingDate") or _values(props, "startDate")
                    for target in _values(props, "entity"):
                        known = sanctions.setdefault(target, ([], []))
                        known[0].extend(p for p in programs if p not in known[0])
                        known[1].extend(dates)
                    continue
                if schema not in _FTM_KINDS or data.get("target") is False:
                    continue
                names: list[str] = []
                for key in ("name", "alias"):
                    for value in _values(props, key):
                        _add(names, value)
                nested_programs: list[str] = []
                for nested in props.get("sanctions") or []:  # targets.nested.json
                    if isinstance(nested, dict) and isinstance(nested.get("properties"), dict):
                        nested_programs += _values(nested["properties"], "programId") or _values(
                            nested["properties"], "program"
                        )
                programs = list(
                    dict.fromkeys(_values(props, "programId") + _values(props, "program") + nested_programs)
                )
                created = sorted([*_values(props, "createdAt"), str(data.get("first_seen") or "")[:10]])
                created = [c for c in created if c]
                entry = _entry(
                    entry_id=entity_id,
                    reference=entity_id,
                    kind=_FTM_KINDS[schema],
                    names=names,
                    previous=[p for v in _values(props, "previousName") for p in split_names(v)],
                    identifiers=[imo for v in _values(props, "imoNumber") if (imo := _imo(v))],
                    programs=programs,
                    listed_on=created[0][:10] if created else None,
                    list_name=list_name,
                    prefix="os",
                    where=f"{path}:{number} ({entity_id})",
                )
                position[entity_id] = len(parsed.entries)
                parsed.entries.append(entry)
    except UnicodeDecodeError as error:
        raise ListFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if lines == 0:
        raise ListFileError(f"{path}: empty file")
    for target, (programs, dates) in sanctions.items():
        at = position.get(target)
        if at is None:
            continue
        entry = parsed.entries[at]
        merged = list(dict.fromkeys([*entry.programs, *programs]))
        listed = min([d[:10] for d in dates] + ([entry.listed_on] if entry.listed_on else []), default=None)
        tags = {*entry.tags, *(f"os-{_slug(p)}" for p in merged if _slug(p)), *regime_tags(merged)}
        parsed.entries[at] = entry.model_copy(
            update={
                "programs": merged,
                "list_type": ";".join(merged) or None,
                "listed_on": listed,
                "tags": sorted(tags),
            }
        )
    if not parsed.entries:
        raise ListFileError(f"{path}: no persons, organisations, companies or vessels in it")
    parsed.date = latest[:19] or "undated"
    return parsed


READERS: dict[ListFormat, Callable[[Path, str], ParsedList]] = {
    ListFormat.OFAC_SDN_XML: read_ofac_sdn_xml,
    ListFormat.EU_XML: read_eu_xml,
    ListFormat.UK_XML: read_uk_xml,
    ListFormat.FTM_JSON: read_ftm_json,
}
