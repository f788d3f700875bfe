"""The ingest stage: watch the inbox folder and publish what lands there.

A file dropped in ``inbox/`` (or ``inbox/<source>/``) is ingested, then moved to ``done/``;
a file that cannot be read goes to ``failed/`` with a ``.reason`` file beside it. A crash in the
middle leaves the file in the inbox: ingesting it again publishes nothing twice (report ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.ingest.files import ingest_file, source_for, source_for_path
from services.ingest.publisher import Publisher
from services.ingest.sources import UnreadableFile
from services.logging import get_logger
from services.runtime import Consumes, Context
from services.wire import Entry


class IngestStage:
    name = "ingest"
    consumes: Consumes | None = None

    def __init__(self, ctx: Context, feed: Sequence[Path] = ()) -> None:
        self.ctx = ctx
        self.inbox = ctx.settings.inbox
        self.feed = list(feed)
        self.publisher = Publisher(ctx.redis, ctx.settings.streams, ctx.settings.dedup_retention)
        self.log = get_logger(stage=self.name)
        self._task: asyncio.Task[None] | None = None
        self._working = False

    async def start(self) -> None:
        for folder in (self.inbox, self.inbox / "done", self.inbox / "failed"):
            folder.mkdir(parents=True, exist_ok=True)
        for path in self.feed:
            await self.ingest_path(path, move=False)
        self._task = asyncio.create_task(self._watch(), name="inbox")
        self.log.info("watching inbox", inbox=str(self.inbox))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def busy(self) -> bool:
        return self._working or bool(self._waiting())

    async def handle(self, batch: Sequence[Entry]) -> None:  # pragma: no cover - consumes nothing
        raise NotImplementedError

    def _waiting(self) -> list[Path]:
        found = []
        for path in sorted(self.inbox.rglob("*")):
            rel = path.relative_to(self.inbox)
            if not path.is_file() or rel.parts[0] in ("done", "failed") or path.name.startswith("."):
                continue
            found.append(path)
        return found

    async def _watch(self) -> None:
        while True:
            self._working = True
            try:
                for path in self._waiting():
                    await self.ingest_path(path, move=True)
            except Exception as error:
                self.log.error("inbox scan failed", error=str(error))
            finally:
                self._working = False
            await asyncio.sleep(self.ctx.settings.inbox_interval)

    async def ingest_path(self, path: Path, *, move: bool) -> None:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            name = source_for_path(file)
            if name is None:
                self._fail(
                    file,
                    "no source for this file: put it under inbox/<source>/ or use a known extension",
                    move,
                )
                continue
            try:
                tally = await ingest_file(file, source_for(name), self.publisher)
            except UnreadableFile as error:
                self._fail(file, str(error), move)
                continue
            self.log.info("file ingested", file=str(file), source=name, **tally.as_dict())
            if move:
                self._move(file, self.inbox / "done")

    def _fail(self, file: Path, reason: str, move: bool) -> None:
        self.log.warning("file refused", file=str(file), reason=reason)
        if move:
            target = self._move(file, self.inbox / "failed")
            target.with_name(target.name + ".reason").write_text(reason + "\n", encoding="utf-8")

    @staticmethod
    def _move(file: Path, folder: Path) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = folder / f"{stamp}-{file.name}"
        shutil.move(str(file), target)
        return target
