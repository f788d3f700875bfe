"""The ingest stage: the inbox folder, the HTTP endpoint and the news feeds, published once each.

A file dropped in ``inbox/`` (or ``inbox/<source>/``) is ingested, then moved to ``done/``;
a file that cannot be read goes to ``failed/`` with a ``.reason`` file beside it. Files and folders
given at start (``tradewatch up --feed``) are read in place, once; a folder's subfolders only
where named after a source (``samples/comtrade/``), so that a folder of something else beside the
reports (``samples/expected/``) is not read as reports. One line then says what was found. A crash in the
middle leaves the file in the inbox: ingesting it again publishes nothing twice (report ids).
How a file finds its source: :mod:`services.ingest.registry`. The HTTP server
(:mod:`services.ingest.sources.api`) runs in this stage on ``TRADEWATCH_HTTP_HOST:PORT``, and
each feed of ``config/sources.yaml`` gets a poller (:mod:`services.ingest.sources.feeds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

from services.ingest.files import ingest_file
from services.ingest.publisher import Publisher, Tally
from services.ingest.registry import Sources
from services.ingest.sources import UnreadableFile
from services.ingest.sources.api import make_app
from services.ingest.sources.feeds import FeedPoller
from services.logging import get_logger
from services.runtime import Context


class IngestStage:
    name = "ingest"

    def __init__(self, ctx: Context, feed: Sequence[Path] = ()) -> None:
        self.ctx = ctx
        self.inbox = ctx.settings.inbox
        self.feed = list(feed)
        self.publisher = Publisher(ctx.redis, ctx.settings.streams, ctx.settings.dedup_retention)
        self.log = get_logger(stage=self.name)
        self._task: asyncio.Task[None] | None = None
        self._working = False
        self._http: _Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._feeds: list[asyncio.Task[None]] = []
        self._pollers: list[FeedPoller] = []
        self._client: httpx.AsyncClient | None = None
        self.http_port: int | None = None
        self.sources: Sources | None = None

    async def start(self) -> None:
        self.sources = Sources.from_settings(self.ctx.settings)  # ConfigError: refuse to start
        for folder in (self.inbox, self.inbox / "done", self.inbox / "failed"):
            folder.mkdir(parents=True, exist_ok=True)
        if self.ctx.settings.http_enabled:
            await self._serve_http()
        self._start_feeds()
        if self.feed:
            fed = Tally()
            for path in self.feed:
                fed.add(await self.ingest_path(path, move=False))
            self.log.info(feed_summary(fed), feed=[str(p) for p in self.feed], **fed.as_dict())
        self._task = asyncio.create_task(self._watch(), name="inbox")
        self.log.info("watching inbox", inbox=str(self.inbox))

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._feeds) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task

    async def _serve_http(self) -> None:
        s = self.ctx.settings
        app = make_app(self.publisher, s.api_keys, s.http_max_body_bytes, self._ready)
        sock = socket.socket(socket.AF_INET6 if ":" in s.http_host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((s.http_host, s.http_port))
        except OSError as error:
            sock.close()
            raise RuntimeError(
                f"cannot serve HTTP on {s.http_host}:{s.http_port}: {error.strerror}"
                " (set TRADEWATCH_HTTP_PORT, 0 for any free port, or TRADEWATCH_HTTP_ENABLED=false)"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
        self._http = _Server(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]), name="http")
        while not self._http.started and not self._http_task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.01)
        if self._http_task.done():
            self._http_task.result()
        self.log.info("serving HTTP", url=f"http://{s.http_host}:{self.http_port}", keys=len(s.api_keys))

    async def _ready(self) -> bool:
        return bool(await self.ctx.redis.ping())

    def _start_feeds(self) -> None:
        assert self.sources is not None
        feeds = self.sources.config.feeds
        if not feeds:
            return
        self._client = httpx.AsyncClient(follow_redirects=True, trust_env=False)
        extractor = self.sources.extractor()
        for feed in feeds:
            poller = FeedPoller(feed, extractor, self.publisher, self.ctx.redis, self.ctx.settings.streams)
            self._pollers.append(poller)
            self._feeds.append(asyncio.create_task(poller.run(self._client), name=f"feed-{feed.name}"))
        self.log.info("polling feeds", feeds=[f.name for f in feeds])

    async def busy(self) -> bool:
        return self._working or bool(self._waiting()) or not all(p.tried for p in self._pollers)

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

    async def ingest_path(self, path: Path, *, move: bool) -> Tally:
        """Ingest a file, or a folder's files; the counts of all of them."""
        assert self.sources is not None
        total = Tally()
        for file in _files(path, self.sources.names()):
            name = self.sources.for_path(file, self.inbox if move else path)
            if name is None:
                self._fail(
                    file,
                    "no source for this file: put it under inbox/<source>/, add a rule under inbox:"
                    " in config/sources.yaml, or use a known extension (.jsonl, .ndjson, .txt, .html)",
                    move,
                )
                continue
            try:
                tally = await ingest_file(file, self.sources.get(name), self.publisher)
            except UnreadableFile as error:
                self._fail(file, str(error), move)
                continue
            self.log.info("file ingested", file=str(file), source=name, **tally.as_dict())
            total.add(tally)
            if move:
                self._move(file, self.inbox / "done")
        return total

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


def feed_summary(tally: Tally) -> str:
    """What the files given at start held, for the person who started it:
    ``11 new reports``, ``11 reports already seen, nothing new: ...``, ``2 rejected ...``."""
    if tally.read == 0:
        return "no reports in the files given"

    def reports(n: int) -> str:
        return f"{n} report{'s' if n != 1 else ''}"

    parts = []
    if tally.published:
        parts.append(f"{tally.published} new report{'s' if tally.published != 1 else ''}")
    if tally.duplicates:
        parts.append(f"{tally.duplicates if tally.published else reports(tally.duplicates)} already seen")
    if tally.rejected:
        parts.append(f"{tally.rejected} rejected (tradewatch dlq list ingest)")
    if not tally.published:
        hint = ": `tradewatch alerts list` shows what was sent" if tally.duplicates else ""
        parts.append(f"nothing new{hint}")
    return ", ".join(parts)


def _files(path: Path, sources: Sequence[str]) -> Iterator[Path]:
    """A file, or a folder's files and those of its subfolders named after a source."""
    if not path.is_dir():
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file():
            yield child
        elif child.is_dir() and child.name in sources:
            yield from (f for f in sorted(child.iterdir()) if f.is_file() and not f.name.startswith("."))


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the FastStream app owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases
        return None


__all__ = ["IngestStage"]
