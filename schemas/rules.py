"""The rule file's model (config/rules.yaml): what compliance analysts write.

A rule fires on a report when its ``when`` condition holds. Conditions combine with
``all``/``any``/``not``; several keys in one mapping must all hold. ``item:`` holds when at least
one item of the report satisfies its inner condition, and those items are named in the alert.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from schemas.alert import Severity
from schemas.base import StrictModel
from schemas.durations import Duration
from schemas.report import Condition, CountryCode
from schemas.sanctions import PartyCondition

_HS_SELECTOR = re.compile(r"^(\d{2,10})(?:-(\d{2,10}))?$")

Words = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1)]


class _Strict(StrictModel):
    model_config = ConfigDict(populate_by_name=True)  # merged with the strict base's


def check_hs_selector(value: str) -> str:
    """``"84"``, ``"8456"``, ``"845611"`` or a range of equal-length codes ``"72-83"``."""
    value = str(value).replace(".", "").strip()
    match = _HS_SELECTOR.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an HS code prefix (2-10 digits) or a range like 72-83")
    low, high = match.groups()
    if high is not None:
        if len(low) != len(high):
            raise ValueError(f"range {value!r}: both ends need the same number of digits")
        if int(low) > int(high):
            raise ValueError(f"range {value!r}: the first code is above the second")
    return value


HsSelector = Annotated[
    str, BeforeValidator(lambda v: check_hs_selector(str(v)) if isinstance(v, str | int) else v)
]


class Amount(_Strict):
    """A bound on a money amount, converted to ``currency`` through the rates table."""

    gte: float | None = Field(default=None, ge=0)
    lte: float | None = Field(default=None, ge=0)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

    @model_validator(mode="after")
    def _bounded(self) -> Amount:
        if self.gte is None and self.lte is None:
            raise ValueError("give gte, lte or both")
        return self


class Count(_Strict):
    gte: float | None = Field(default=None, ge=0)
    lte: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounded(self) -> Count:
        if self.gte is None and self.lte is None:
            raise ValueError("give gte, lte or both")
        return self


class ItemCondition(_Strict):
    """Conditions on one item; several keys must all hold for the same item."""

    all_: list[ItemCondition] | None = Field(default=None, alias="all", min_length=1)
    any_: list[ItemCondition] | None = Field(default=None, alias="any", min_length=1)
    not_: ItemCondition | None = Field(default=None, alias="not")
    hs: list[HsSelector] | None = Field(default=None, min_length=1, description="prefixes or ranges")
    categories: list[str] | None = Field(default=None, min_length=1)
    words: Words | None = None
    condition: list[Condition] | None = Field(default=None, min_length=1)
    disassembled: bool | None = None
    unit_price: Amount | None = None
    value: Amount | None = Field(default=None, description="quantity x unit price")
    quantity: Count | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ItemCondition:
        if not self.model_fields_set:
            raise ValueError("an empty condition matches nothing: name at least one test")
        return self


class ReportCondition(_Strict):
    """Conditions on the report; several keys must all hold."""

    all_: list[ReportCondition] | None = Field(default=None, alias="all", min_length=1)
    any_: list[ReportCondition] | None = Field(default=None, alias="any", min_length=1)
    not_: ReportCondition | None = Field(default=None, alias="not")
    item: ItemCondition | None = Field(default=None, description="at least one item satisfies it")
    words: Words | None = Field(default=None, description="in the report text or any item")
    origin_country: list[CountryCode] | None = Field(default=None, min_length=1, description="codes or names")
    destination_country: list[CountryCode] | None = Field(default=None, min_length=1)
    crossing: list[str] | None = Field(default=None, min_length=1)
    source: list[str] | None = Field(default=None, min_length=1)
    total_value: Amount | None = None
    party: PartyCondition | None = Field(default=None, description="a party matches a sanctions list")

    @model_validator(mode="after")
    def _not_empty(self) -> ReportCondition:
        if not self.model_fields_set:
            raise ValueError("an empty condition matches nothing: name at least one test")
        return self


class Escalation(_Strict):
    """Change the severity when a further condition holds.

    ``to`` above the rule's severity raises it (second-hand, disassembled); below lowers it (an
    exemption reference). When a raise and a lowering both hold, the raise wins: one reason to
    relax never hides another reason to worry.
    """

    when: ReportCondition
    to: Severity
    reason: str = Field(min_length=1, max_length=300)


class Exception_(_Strict):
    """An allow-list entry: the rule does not fire on reports that match every field given."""

    id: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=1, max_length=500)
    importer: list[str] | None = None
    exporter: list[str] | None = None
    source: list[str] | None = None
    crossing: list[str] | None = None
    words: Words | None = Field(default=None, description="e.g. an exemption reference in the text")
    expires: date | None = Field(default=None, description="ISO date after which it no longer applies")

    @model_validator(mode="after")
    def _not_empty(self) -> Exception_:
        if not (self.model_fields_set - {"id", "reason", "expires"}):
            raise ValueError("an exception needs at least one field to match on")
        return self


KeyField = Literal[
    "report_id", "source", "crossing", "importer", "exporter", "origin_country",
    "destination_country", "hs_code", "hs_heading", "hs_chapter", "category",
]  # fmt: skip


_BY_REPORT: tuple[KeyField, ...] = ("report_id",)


class Frequency(_Strict):
    """Fire when ``count`` reports matching ``when`` arrive within ``window`` with the same ``per`` values.

    As ElastAlert's frequency rule: once it fires, the count starts again, so a surge of 10
    reports with ``count: 5`` gives two alerts, not six.
    """

    count: int = Field(ge=2, le=100_000)
    window: Duration = Field(gt=0, description="e.g. 7d")
    per: list[KeyField] = Field(
        default_factory=list, description="count separately per value, e.g. [crossing]; none: all together"
    )


class NewTerm(_Strict):
    """Fire the first time a value of ``field`` is seen in a report matching ``when`` (ElastAlert's new_term)."""

    field: KeyField


class ExceptionsFile(_Strict):
    """A team's own allow-list, appended to the rules' exceptions: ``exceptions: {rule-id: [...]}``."""

    version: Literal[1] = 1
    exceptions: dict[str, list[Exception_]] = Field(default_factory=dict)


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-_.]{0,79}$")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4_000)
    severity: Severity
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    legal_basis: str = Field(min_length=1, max_length=1_000)
    when: ReportCondition
    escalate: list[Escalation] = Field(default_factory=list)
    exceptions: list[Exception_] = Field(default_factory=list)
    dedup: list[KeyField] = Field(
        default_factory=lambda: list(_BY_REPORT), min_length=1,
        description="fields whose values make two alerts of this rule the same case",
    )  # fmt: skip
    realert: Duration = Field(default=0, description="the same case is not sent again within it")
    group_by: list[KeyField] = Field(
        default_factory=lambda: list(_BY_REPORT), min_length=1,
        description="alerts sharing these values may be sent as one message",
    )  # fmt: skip
    frequency: Frequency | None = None
    new_term: NewTerm | None = None

    @model_validator(mode="after")
    def _one_kind_over_time(self) -> Rule:
        if self.frequency is not None and self.new_term is not None:
            raise ValueError("a rule has frequency or new_term, not both: write two rules")
        return self


class RuleFile(_Strict):
    version: Literal[1] = 1
    rules: list[Rule] = Field(default_factory=list)
