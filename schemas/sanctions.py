"""Sanctions contracts: the ``party:`` rule condition, and the screening exceptions the store publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas.base import StrictModel

PartyRole = Literal["importer", "exporter", "text"]
_ALL_ROLES: tuple[PartyRole, ...] = ("importer", "exporter", "text")


class PartyCondition(StrictModel):
    """Holds when the importer, the exporter or an organisation named in the text matches a listed
    name or alias of one of ``lists`` with a score of at least ``min_score``."""

    lists: list[str] = Field(
        min_length=1,
        description="list names or tags: the name given at load (un-sc), or un-<regime> (un-dprk)",
    )
    min_score: float = Field(
        default=0.9, gt=0, le=1, description="0..1; 1 is the same name after normalisation"
    )
    roles: list[PartyRole] = Field(
        default_factory=lambda: list(_ALL_ROLES),
        min_length=1,
        description="where to look for names",
    )


class ScreeningException(StrictModel):
    """A reviewed "not this party" decision: screening skips matches of ``name`` to the listed
    entry ``entry`` until ``until``. The store of record keeps them (who, why, revocation) and
    publishes the ones in force at ``<namespace>:screening:exceptions`` (a hash, id -> this
    document as JSON), where the rules stage reads them."""

    id: int = Field(ge=1)
    name: str = Field(
        min_length=1, description="the name as screened: an importer, an exporter, a name in a text"
    )
    entry: str = Field(min_length=1, description="the listed entry's reference (KPe.016) the name is not")
    reason: str
    by: str = Field(description="who decided it (a reviewer)")
    until: datetime = Field(description="the exception lapses at this time")
    case_id: int | None = Field(default=None, description="the case where it was decided")
