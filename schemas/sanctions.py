"""The ``party:`` rule condition: screen a report's parties against loaded sanctions lists."""

from __future__ import annotations

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
