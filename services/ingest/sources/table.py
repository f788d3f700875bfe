"""Tables (CSV or JSON Lines rows) mapped to reports by a declarative column mapping.

A mapping (``config/sources.yaml`` under ``tables:``, or a built-in one: ``comtrade``,
``china-customs``) says which column feeds which report field. Each row becomes one report with
one item. Rows are streamed: memory does not grow with the file. A row that cannot be mapped is
rejected on its own with the file and line; a file whose header lacks a required column, or
that is binary or in another encoding, is refused whole.

A field is a column name, or ``{column: name | [alternatives], map: {...}, required: true}``,
or ``{value: constant}``, or ``{template: "{colA} ({colB})"}``. Report ids are the source and
the ``id`` columns (``comtrade-156:408:X:...``), or a hash of the row when there are none, so the
same row ingested again publishes nothing new. Money in another currency than the rates table's
base is converted into it; the amount as stated stays in the item's description.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import string
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator

from schemas import countries
from schemas.base import StrictModel
from schemas.report import ImportReport
from services.ingest.publisher import content_id
from services.ingest.sources import (
    Parsed,
    Rejection,
    UnreadableFile,
    external_id,
    json_object_line,
    open_checked,
)
from services.money import Rates, format_amount
from services.wire import describe_validation
from services.yamlfile import parse

MAX_LINE_BYTES = 1_000_000
MAX_FIELDS = 1_000

with contextlib.suppress(OverflowError):
    csv.field_size_limit(MAX_LINE_BYTES)


def _shorthand(value: object) -> object:
    if isinstance(value, str | list):
        return {"column": value}
    return value


class FieldSpec(StrictModel):
    """Where a report field comes from: a column, a constant or a template over columns."""

    column: str | list[str] | None = Field(default=None, description="column name, or alternatives")
    value: str | int | float | bool | None = Field(default=None, description="a constant")
    template: str | None = Field(default=None, description='e.g. "{cmdDesc} (HS {cmdCode})"')
    map: dict[str, str] = Field(default_factory=dict, description="value as written -> value to use")
    required: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [n for n in ("column", "value", "template") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, value or template")
        if self.template is not None:
            try:
                names = [f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None]
            except ValueError as error:
                raise ValueError(f"template: {error}") from None
            if not names or any(not n for n in names):
                raise ValueError("a template names columns in braces: {column}")
        return self

    def columns(self) -> list[str]:
        if isinstance(self.column, str):
            return [self.column]
        if isinstance(self.column, list):
            return list(self.column)
        if self.template is not None:
            return [f for _, f, _, _ in string.Formatter().parse(self.template) if f]
        return []


Spec = Annotated[FieldSpec, BeforeValidator(_shorthand)]


class ReportFields(StrictModel):
    reported_at: Spec | None = None
    origin_country: Spec | None = None
    destination_country: Spec | None = None
    crossing: Spec | None = None
    importer: Spec | None = None
    exporter: Spec | None = None
    url: Spec | None = None


class ItemFields(StrictModel):
    description: Spec | None = None
    hs_code: Spec | None = None
    quantity: Spec | None = None
    unit: Spec | None = None
    unit_price: Spec | None = None
    value: Spec | None = Field(default=None, description="total value; unit_price = value / quantity")
    currency: Spec | None = None
    condition: Spec | None = None
    disassembled: Spec | None = None


class Flow(StrictModel):
    """Trade statistics: a reporter, a partner and a flow code give origin and destination."""

    column: Spec | None = Field(default=None, description="the flow code; absent: the default")
    reporter: Spec
    partner: Spec
    exports: list[str] = Field(default_factory=lambda: ["X", "RX", "DX", "FX", "XIP", "XOP"])
    imports: list[str] = Field(default_factory=lambda: ["M", "RM", "FM", "MIP", "MOP"])
    default: Literal["export", "import"] | None = None


class TableMapping(StrictModel):
    format: Literal["csv", "jsonl"] = "csv"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    label: str | None = Field(default=None, description="the reports' source; default the mapping's name")
    id: list[str] = Field(
        default_factory=list,
        description='columns forming the external id ("name?": used when the header has it)',
    )
    flow: Flow | None = None
    report: ReportFields = Field(default_factory=ReportFields)
    item: ItemFields
    notes: dict[str, Spec] = Field(
        default_factory=dict, description="label -> field, written into the report text"
    )

    @model_validator(mode="after")
    def _item_described(self) -> TableMapping:
        if self.item.description is None and self.item.hs_code is None:
            raise ValueError("item needs a description or an hs_code field")
        if self.flow is not None and (self.report.origin_country or self.report.destination_country):
            raise ValueError("give either flow or report.origin_country/destination_country, not both")
        return self


# ---------------------------------------------------------------- countries


def country(value: str) -> str:
    """An alpha-2 code from an alpha-2, alpha-3, M49 code or a common name; ValueError if unknown."""
    code = countries.lookup(value)
    if code is None:
        raise ValueError(f"{countries.problem(value)}; a table may also translate it under map:")
    return code


# ---------------------------------------------------------------- values

_NUMBER = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d*)(\.\d+)?([eE][+-]?\d+)?$")


_PERIODS = [
    (re.compile(r"^\d{4}$"), "%Y"),
    (re.compile(r"^\d{6}$"), "%Y%m"),
    (re.compile(r"^\d{4}-\d{2}$"), "%Y-%m"),
    (re.compile(r"^\d{4}M\d{2}$"), "%YM%m"),
    (re.compile(r"^\d{8}$"), "%Y%m%d"),
    (re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$"), "%Y/%m/%d"),
]
"""Period forms of trade statistics (2026, 202601, 2026-01, 2026M01, ...) and how to read them."""


def number(value: str, what: str) -> float | None:
    text = value.strip().replace("\u00a0", "").replace(" ", "")
    if not text:
        return None
    if not _NUMBER.match(text):
        raise ValueError(f"{what}: {value!r} is not a number")
    return float(text.replace(",", ""))


def moment(value: str, what: str) -> datetime | None:
    """ISO dates and times, and trade-statistics periods: 2026, 202601, 2026-01, 2026M01."""
    text = value.strip()
    if not text:
        return None
    for pattern, fmt in _PERIODS:
        if pattern.match(text):
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a date (ISO 8601 or a period like 202601)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def truth(value: str, what: str) -> bool | None:
    text = value.strip().casefold()
    if not text:
        return None
    if text in ("1", "true", "yes", "y", "是", "예"):
        return True
    if text in ("0", "false", "no", "n", "否", "아니오"):
        return False
    raise ValueError(f"{what}: {value!r} is not yes or no")


# ---------------------------------------------------------------- the source


class TableSource:
    """Rows of a CSV or JSON Lines table -> one report each, through a mapping."""

    def __init__(
        self,
        name: str,
        mapping: TableMapping,
        rates: Rates,
        max_file_bytes: int = 2_000_000_000,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.name = name
        self.mapping = mapping
        self.rates = rates
        self.label = mapping.label or name
        self.max_file_bytes = max_file_bytes
        self.max_line_bytes = max_line_bytes
        self.position = 0

    # -- reading

    def read(self, path: Path) -> Iterator[Parsed]:
        what = "a CSV table" if self.mapping.format == "csv" else "JSON Lines"
        with open_checked(path, self.max_file_bytes, self.mapping.encoding, what) as handle:
            if self.mapping.format == "csv":
                yield from self._read_csv(path, handle)
            else:
                yield from self._read_jsonl(path, handle)

    def _read_csv(self, path: Path, handle: Any) -> Iterator[Parsed]:
        state = {"line": 0, "first": 1}
        raw_lines: list[str] = []
        pending: list[Rejection] = []

        def lines() -> Iterator[str]:
            for number_, raw in enumerate(handle, start=1):
                self.position += len(raw)
                state["line"] = number_
                if len(raw) > self.max_line_bytes:
                    pending.append(
                        Rejection(
                            f"{path.name}:{number_}",
                            raw[:1000],
                            f"line is {len(raw)} bytes, over the limit of {self.max_line_bytes}",
                        )
                    )
                    continue
                try:
                    text = raw.decode(self.mapping.encoding)
                except UnicodeDecodeError as error:
                    pending.append(
                        Rejection(
                            f"{path.name}:{number_}",
                            raw,
                            f"not {self.mapping.encoding} (byte {error.start})",
                        )
                    )
                    continue
                if not raw_lines:
                    state["first"] = number_
                raw_lines.append(text)
                yield text

        reader = csv.reader(lines(), delimiter=self.mapping.delimiter)
        header: list[str] | None = None
        while True:
            raw_lines.clear()
            record: list[str] | csv.Error | None
            try:
                record = next(reader)
            except StopIteration:
                record = None
            except csv.Error as error:
                record = error
            yield from pending
            pending.clear()
            if record is None:
                break
            raw = "".join(raw_lines).rstrip("\r\n")
            if isinstance(record, csv.Error):
                yield Rejection(f"{path.name}:{state['line']}", raw, f"not CSV: {record}")
                continue
            where = f"{path.name}:{state['first']}"
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip().lstrip("\ufeff") for cell in record]
                self._check_header(path, header)
                continue
            if len(record) > len(header):
                yield Rejection(where, raw, f"{len(record)} fields, the header has {len(header)}")
                continue
            yield self.map_row(dict(zip(header, record, strict=False)), where, raw)
        if header is None:
            raise UnreadableFile(f"{path}: no header row (an empty file?)")

    def _read_jsonl(self, path: Path, handle: Any) -> Iterator[Parsed]:
        for number_, raw in enumerate(handle, start=1):
            self.position += len(raw)
            where = f"{path.name}:{number_}"
            document = json_object_line(raw, where, self.mapping.encoding, self.max_line_bytes)
            if document is None:
                continue
            if isinstance(document, Rejection):
                yield document
                continue
            text = raw.decode(self.mapping.encoding).strip()
            row = {
                str(k): "" if v is None else v if isinstance(v, str) else json.dumps(v)
                for k, v in document.items()
            }
            yield self.map_row(row, where, text)

    def _check_header(self, path: Path, header: list[str]) -> None:
        present = set(header)
        missing = [
            " or ".join(spec.columns())
            for spec in self._specs()
            if spec.required and spec.columns() and not any(c in present for c in spec.columns())
        ]
        missing += [c for c in self.mapping.id if not c.endswith("?") and c not in present]
        if missing:
            shown = ", ".join(header[:40]) + (", ..." if len(header) > 40 else "")
            raise UnreadableFile(
                f"{path}: not a {self.name} table: missing columns {', '.join(missing)} (the header has: {shown})"
            )

    def _specs(self) -> Iterator[FieldSpec]:
        m = self.mapping
        for group in (m.report, m.item):
            for name in type(group).model_fields:
                spec = getattr(group, name)
                if spec is not None:
                    yield spec
        yield from m.notes.values()
        if m.flow is not None:
            yield from (s for s in (m.flow.column, m.flow.reporter, m.flow.partner) if s is not None)

    # -- mapping one row

    @staticmethod
    def _get(spec: FieldSpec | None, row: Mapping[str, str], what: str) -> str | None:
        if spec is None:
            return None
        if spec.value is not None:
            return str(spec.value).lower() if isinstance(spec.value, bool) else str(spec.value)
        if spec.template is not None:
            values = {c: row.get(c, "").strip() for c in spec.columns()}
            text = " ".join(spec.template.format_map(values).split()) if any(values.values()) else ""
        else:
            text = ""
            for column in spec.columns():
                if row.get(column, "").strip():
                    text = row[column].strip()
                    break
        if text and text in spec.map:
            text = spec.map[text]
        if not text:
            if spec.required:
                raise ValueError(f"{what}: empty ({' or '.join(spec.columns()) or 'value'})")
            return None
        return text

    def map_row(self, row: Mapping[str, str], where: str, raw: str) -> Parsed:
        try:
            document = self._document(row)
        except ValueError as error:
            return Rejection(where, raw, str(error))
        try:
            return ImportReport.model_validate(document)
        except ValidationError as error:
            return Rejection(where, raw, describe_validation(error))

    def _document(self, row: Mapping[str, str]) -> dict[str, Any]:
        m = self.mapping
        get = self._get
        item: dict[str, Any] = {}
        for name in ("description", "hs_code", "unit", "condition"):
            item[name] = get(getattr(m.item, name), row, f"item.{name}")
        for name in ("quantity", "unit_price"):
            raw_value = get(getattr(m.item, name), row, f"item.{name}")
            item[name] = number(raw_value, f"item.{name}") if raw_value is not None else None
        raw_total = get(m.item.value, row, "item.value")
        total = number(raw_total, "item.value") if raw_total is not None else None
        if total is not None and item["unit_price"] is None:
            if item["quantity"]:
                item["unit_price"] = total / item["quantity"]
            else:  # a value without a quantity: one consignment
                item["quantity"], item["unit"], item["unit_price"] = 1.0, "consignment", total
        flag = get(m.item.disassembled, row, "item.disassembled")
        item["disassembled"] = truth(flag, "item.disassembled") if flag is not None else None
        currency = get(m.item.currency, row, "item.currency")
        if item["unit_price"] is not None:
            currency = (currency or self.rates.base).strip().upper()
            item.update(self._normalise(item["unit_price"], currency, item.get("description")))
        item = {k: v for k, v in item.items() if v is not None}
        if item.get("condition"):
            item["condition"] = str(item["condition"]).strip().lower()

        report: dict[str, Any] = {"source": self.label}
        for name in ("crossing", "importer", "exporter", "url"):
            report[name] = get(getattr(m.report, name), row, f"report.{name}")
        when = get(m.report.reported_at, row, "report.reported_at")
        report["reported_at"] = moment(when, "report.reported_at") if when is not None else None
        for name in ("origin_country", "destination_country"):
            code = get(getattr(m.report, name), row, f"report.{name}")
            report[name] = country(code) if code is not None else None
        if m.flow is not None:
            report["origin_country"], report["destination_country"] = self._flow(m.flow, row)
        notes = []
        for label, spec in m.notes.items():
            value = get(spec, row, f"notes.{label}")
            if value is not None:
                notes.append(f"{label}: {value}")
        if notes:
            report["text"] = "; ".join(notes)
        report["items"] = [item]
        report = {k: v for k, v in report.items() if v is not None}
        if m.id:
            report["report_id"] = external_id(
                self.label, [row.get(c.rstrip("?"), "") for c in m.id if c.rstrip("?") in row]
            )
        else:
            report["report_id"] = content_id(self.label, dict(row))
        return report

    def _flow(self, flow: Flow, row: Mapping[str, str]) -> tuple[str, str]:
        reporter = country(self._get(flow.reporter, row, "flow.reporter") or "")
        partner = country(self._get(flow.partner, row, "flow.partner") or "")
        code = self._get(flow.column, row, "flow.column")
        if code is None:
            if flow.default is None:
                raise ValueError("flow: no flow code and no default")
            direction = flow.default
        elif code.upper() in {c.upper() for c in flow.exports}:
            direction = "export"
        elif code.upper() in {c.upper() for c in flow.imports}:
            direction = "import"
        else:
            raise ValueError(f"flow: {code!r} is neither an export ({', '.join(flow.exports)}) nor an import")
        return (reporter, partner) if direction == "export" else (partner, reporter)

    def _normalise(self, unit_price: float, currency: str, description: str | None) -> dict[str, Any]:
        base = self.rates.base
        if currency == base:
            return {"unit_price": unit_price, "currency": base}
        converted = self.rates.convert(unit_price, currency, base)
        if converted is None:
            known = ", ".join(sorted(self.rates.rates))
            raise ValueError(f"currency {currency!r} is not in the rates table ({known})")
        stated = f"{format_amount(unit_price)} {currency} a unit as stated"
        return {
            "unit_price": converted,
            "currency": base,
            "description": f"{description} ({stated})" if description else None,
        }


def builtin(name: str, text: str) -> TableMapping:
    """A built-in mapping, written in the same YAML as config/sources.yaml and checked alike."""
    return parse(text, f"built-in mapping {name}").validate(TableMapping)
