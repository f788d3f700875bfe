"""Alert v1: one rule's verdict on one report, with the reasons a person can check."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.base import StrictModel


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {s: i for i, s in enumerate(Severity)}


class MatchedItem(StrictModel):
    """An item of the report that made the rule fire, and what about it did."""

    index: int = Field(ge=0, description="position in the report's items")
    description: str | None = None
    hs_code: str | None = None
    categories: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(
        default_factory=list, description="the conditions that held, in words a person can check"
    )
    severity: Severity | None = Field(
        default=None,
        description="what this item alone warrants: the alert's severity is the worst of its items'",
    )
    severity_reason: str | None = Field(
        default=None, description="why the item's severity differs from the rule's (an escalation)"
    )
    classification: list[str] = Field(
        default_factory=list,
        description="how the item was recognised (the part of evidence that every rule shares)",
    )
    # The facts of the line, as the report gave them, so a case reads without the report at hand.
    quantity: float | None = Field(default=None, ge=0)
    unit: str | None = None
    unit_price: float | None = Field(default=None, ge=0, description="in ``currency``, as reported")
    currency: str | None = Field(default=None, description="ISO 4217 code of unit_price and value")
    value: float | None = Field(default=None, ge=0, description="quantity x unit_price, in ``currency``")
    value_base: float | None = Field(
        default=None, ge=0, description="value converted to ``base_currency`` through the rates table"
    )
    base_currency: str | None = Field(default=None, description="the rates table's base currency")
    # Goods found in text: where the report's own words name the item.
    quote: str | None = Field(
        default=None,
        description="the sentence of the report's text that named the item, as written (clipped "
        "around the item when long); set for goods found in text, where the report had no items "
        "(then index is the position among the goods found) or an article's items",
    )
    marks: list[tuple[int, int]] = Field(
        default_factory=list,
        description="[start, end) character offsets in quote of the words that named the item and "
        "of the markers that qualify it (second-hand, disassembled...), to show them marked",
    )


class Alert(StrictModel):
    schema_version: Literal[1] = 1
    alert_id: str = Field(description="derived from report_id, rule_id and rule_version")
    rule_id: str
    rule_version: str
    severity: Severity
    report_id: str
    title: str
    summary: str
    matched_items: list[MatchedItem] = Field(default_factory=list)
    evidence: list[str] = Field(
        default_factory=list, description="report-level reasons (words in the text, crossing, ...)"
    )
    legal_basis: str
    tags: list[str] = Field(default_factory=list)
    created_at: datetime
    source: str | None = None
    crossing: str | None = None
    origin_country: str | None = None
    destination_country: str | None = None
    importer: str | None = None
    exporter: str | None = None
    reported_at: datetime | None = Field(default=None, description="when the report says it was made")
    url: str | None = None
    dedup_key: str = Field(description="same key within the re-alert window: notify once")
    group_key: str = Field(description="alerts sharing it may be sent as one message")
    realert: float = Field(
        default=0,
        ge=0,
        description="seconds: another alert with the same dedup_key within it is not sent (0: no window)",
    )
    backfill: bool = Field(
        default=False,
        description="a rule over time fired by a report whose event time was older than the backfill "
        "horizon when it arrived: recorded as a case, not notified",
    )
    # Goods the catalog does not recognise.
    unrecognised: list[str] = Field(
        default_factory=list,
        description="descriptions of the report's items the catalog could not classify (no HS code "
        "given, no catalog term in the words): named so a person can look at them",
    )


def alert_id_for(report_id: str, rule_id: str, rule_version: str) -> str:
    """Stable id: a redelivered report yields the same alert id, so the notifier drops the repeat."""
    digest = hashlib.sha256(f"{report_id}\x1f{rule_id}\x1f{rule_version}".encode()).hexdigest()
    return f"a-{digest[:32]}"
