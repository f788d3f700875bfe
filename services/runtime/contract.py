"""The stage contract: what the runtime asks of every stage, and what it gives each one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import redis.asyncio as aredis

from services import server
from services.settings import Settings
from services.wire import Entry


@dataclass(frozen=True, slots=True)
class Consumes:
    """One stream a stage reads, its group, and where its poison messages go."""

    stream: str
    group: str
    dead_stream: str


@dataclass
class Context:
    """What every stage gets: the settings, the server, a client for its own commands."""

    settings: Settings
    endpoint: server.Endpoint
    redis: aredis.Redis


class Stage(Protocol):
    """A unit of the pipeline that one process runs: started, drained, stopped."""

    name: str

    async def start(self) -> None:
        """Load configuration, start background tasks. Raise to refuse to start."""

    async def stop(self) -> None:
        """Finish the work in hand (called after the subscribers stopped)."""

    async def busy(self) -> bool:
        """Work held outside the input streams (inbox files, scheduled retries, digests)."""


@runtime_checkable
class StreamStage(Stage, Protocol):
    """A stage that reads streams through a consumer group (rules, notify). A stage fed from
    outside the pipeline (ingest) is a plain ``Stage``: it has nothing to read and no handler."""

    @property
    def partitions(self) -> Sequence[Consumes]:
        """Every stream the stage reads: one per partition (one in all without partitions)."""

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        """Handle entries read from ``consumes`` and XACK each one whose effect is stored, in the
        same atomic step. Raise: nothing is acked, and the entries are delivered again."""


@runtime_checkable
class GatedStage(Protocol):
    """A stream stage whose work depends on something besides the server (the records stage's
    database). While ``can_handle`` is False its reclaimer claims nothing: an entry left pending
    by an outage is not delivered again and again, and never reaches the delivery limit (and
    the dead letters) for a cause that is not its own."""

    async def can_handle(self) -> bool:
        """False while the stage knows it cannot store anything."""
