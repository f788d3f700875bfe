"""ImportReport v1: one report of goods moving across a border, as every source produces it.

Outside producers rely on these field names; a change of meaning is a new schema_version.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from schemas.base import StrictModel
from schemas.countries import country_code

MAX_TEXT_CHARS = 200_000
MAX_ITEMS = 2_000


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _country(value: object) -> object:
    # An M49 number may come unquoted from YAML (408): read it too.
    return country_code(value) if isinstance(value, str | int) and not isinstance(value, bool) else value


CountryCode = Annotated[
    str,
    BeforeValidator(_country),
    Field(
        description="ISO 3166-1 alpha-2 code, e.g. CN, KP; an alpha-3 code (PRK), a UN M49 number "
        "(408) or a name (North Korea, DPRK) is accepted and stored as the alpha-2 code",
        examples=["KP"],
    ),
]
CurrencyCode = Annotated[
    str,
    BeforeValidator(_upper),
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(description="ISO 4217 code, e.g. CNY, USD"),
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

_HS_SEPARATORS = re.compile(r"[\s.\-]")


class Condition(StrEnum):
    NEW = "new"
    USED = "used"
    UNKNOWN = "unknown"


class ReportItem(StrictModel):
    """One line of goods. A description, an HS code, or both."""

    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000)] | None = None
    hs_code: str | None = Field(
        default=None,
        description="HS or national tariff code, 2 to 10 digits; dots and spaces are dropped",
        examples=["8456.11", "84561100"],
    )
    quantity: float | None = Field(default=None, ge=0)
    unit: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    unit_price: float | None = Field(default=None, ge=0)
    currency: CurrencyCode | None = None
    condition: Condition = Condition.UNKNOWN
    disassembled: bool | None = None

    @field_validator("hs_code", mode="before")
    @classmethod
    def _normalise_hs(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            value = _HS_SEPARATORS.sub("", value)
            if not re.fullmatch(r"\d{2,10}", value):
                raise ValueError("an HS code is 2 to 10 digits (dots and spaces allowed)")
        return value

    @model_validator(mode="after")
    def _described(self) -> ReportItem:
        if not self.description and not self.hs_code:
            raise ValueError("an item needs a description or an hs_code")
        return self


_IMO_WRITTEN = re.compile(r"^\s*(?:IMO)?\s*(?:No\.?|Number|n[o°º]\.?|#)?\s*[:.]?\s*(\d{7})\s*$", re.I)


class Vessel(StrictModel):
    """A ship named in a report: its name, its IMO number, or both."""

    name: ShortText | None = Field(default=None, description="the vessel's name as the report gives it")
    imo: str | None = Field(
        default=None,
        description="IMO number: seven digits, 'IMO 9074729' or 'IMO No. 9074729' accepted and stored as "
        "the digits; one with a wrong check digit is kept, said so in the evidence and never matched",
        examples=["9074729"],
    )

    @field_validator("imo", mode="before")
    @classmethod
    def _normalise_imo(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            found = _IMO_WRITTEN.match(value)
            if not found:
                raise ValueError("an IMO number is seven digits ('IMO 9074729' accepted)")
            return found.group(1)
        return value

    @model_validator(mode="after")
    def _named(self) -> Vessel:
        if not self.name and not self.imo:
            raise ValueError("a vessel needs a name or an imo")
        return self


class ImportReport(StrictModel):
    """A report of an import: from customs data, a partner system or a news article."""

    schema_version: Literal[1] = 1
    report_id: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^\S+$"),
    ]
    source: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    reported_at: datetime | None = None
    origin_country: CountryCode | None = None
    destination_country: CountryCode | None = None
    crossing: ShortText | None = None
    importer: ShortText | None = None
    exporter: ShortText | None = None
    items: list[ReportItem] = Field(default_factory=list, max_length=MAX_ITEMS)
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] | None = None
    url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000)] | None = None
    vessels: list[Vessel] = Field(
        default_factory=list,
        max_length=50,
        description="ships carrying the goods: screened by IMO number (and name) against listed vessels",
    )

    @model_validator(mode="after")
    def _has_content(self) -> ImportReport:
        if not self.items and not (self.text and self.text.strip()):
            raise ValueError("a report needs at least one of items or text")
        return self
