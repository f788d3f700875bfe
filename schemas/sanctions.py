"""Sanctions screening contracts: the ``party:`` rule condition, and the reviewed exceptions the
store of record publishes for screening to honour."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas.base import StrictModel

PartyRole = Literal["importer", "exporter", "text", "vessel"]
_ALL_ROLES: tuple[PartyRole, ...] = ("importer", "exporter", "text", "vessel")


class PartyCondition(StrictModel):
    """Holds when the importer, the exporter, an organisation named in the text or a vessel of the
    report matches a listed name, alias or IMO number of one of ``lists`` with a score of at least
    ``min_score``."""

    lists: list[str] = Field(
        min_length=1,
        description="list names or tags: the name given at load (un-sc, ofac-sdn, eu-fsf, uk-sanctions, "
        "opensanctions), a regime (un-dprk; dprk on any list) or any (every list in force)",
    )
    min_score: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="0..1; 1 is the same name after normalisation (or the same IMO number)",
    )
    roles: list[PartyRole] = Field(
        default_factory=lambda: list(_ALL_ROLES),
        min_length=1,
        description="where to look: importer, exporter, text (names and IMO numbers in it), vessel "
        "(the report's vessels and the IMO numbers its text gives)",
    )


class ScreeningException(StrictModel):
    """A reviewed "not this party" decision: screening skips ``name`` against ``entry``, visibly,
    until ``expires``. Published by the store of record in the Redis hash
    ``<namespace>:sanctions:exceptions`` (one JSON object per field; the field name is free, an id)."""

    name: str = Field(min_length=1, description="the name as screened (importer, exporter, text or vessel)")
    entry: str = Field(min_length=1, description="the listed entry: its reference (KPe.016) or record id")
    list: str | None = Field(default=None, description="the list it is on (informative)")
    by: str = Field(min_length=1, description="who reviewed it")
    reason: str = Field(min_length=1, description="why this is not the listed party")
    expires: datetime | None = Field(default=None, description="when the decision lapses; none: never")
    id: str | None = None
    created: datetime | None = None
