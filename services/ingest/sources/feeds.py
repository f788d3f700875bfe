"""RSS and Atom feeds listed in ``config/sources.yaml`` (``feeds:``), polled politely.

Each entry becomes an article report (the same extraction as ``--source article``) with the id
``<feed>-<hash of the entry's guid or link>``, so an entry seen again publishes nothing new.

Politeness: one poll per ``interval`` per feed across every replica and restart (a slot key with
the interval as its lifetime, ``SET NX EX``); conditional requests with the ETag and
Last-Modified of the last answer (kept in Redis), so an unchanged feed costs a 304; a
``Retry-After`` on 429 or 503 is honoured; errors back off, doubling up to an hour; a
``User-Agent`` says who polls; a feed larger than ``max_bytes`` is cut off and refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import redis.asyncio as aredis
from defusedxml import ElementTree
from pydantic import ValidationError

from schemas.streams import StreamNames
from services.ingest.publisher import Publisher, Tally
from services.ingest.registry import Feed
from services.ingest.sources.article import Extractor, html_to_text
from services.logging import get_logger
from services.wire import describe_validation

USER_AGENT = "tradewatch-feed-poller/1 (sanctions-compliance monitoring)"
MAX_BACKOFF = 3_600.0


@dataclass(frozen=True, slots=True)
class FeedEntry:
    guid: str
    title: str
    link: str | None
    text: str
    published: datetime | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: Any, *names: str) -> str:
    for child in element:
        if _local(child.tag) in names and (child.text or "").strip():
            return str(child.text).strip()
    return ""


def _date(value: str) -> datetime | None:
    if not value:
        return None
    with contextlib.suppress(TypeError, ValueError, IndexError):
        parsed = parsedate_to_datetime(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    with contextlib.suppress(ValueError):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def parse_feed(body: bytes) -> list[FeedEntry]:
    """The entries of an RSS 2.0, RSS 1.0 or Atom document; ValueError when it is none of them."""
    try:
        root = ElementTree.fromstring(body)
    except Exception as error:  # defusedxml raises ParseError and its own refusals (entities)
        raise ValueError(f"not a feed: {error}") from None
    if _local(root.tag) not in ("rss", "RDF", "feed"):
        raise ValueError(f"not a feed: the document is <{_local(root.tag)}>")
    entries = []
    for element in root.iter():
        if _local(element.tag) not in ("item", "entry"):
            continue
        title = _child_text(element, "title")
        link = _child_text(element, "link") or None
        if link is None:
            for child in element:
                if (
                    _local(child.tag) == "link"
                    and child.get("href")
                    and child.get("rel", "alternate") == "alternate"
                ):
                    link = child.get("href")
                    break
        markup = _child_text(element, "encoded", "content") or _child_text(element, "description", "summary")
        _, text = html_to_text(markup) if "<" in markup else ("", markup)
        guid = (
            _child_text(element, "guid", "id") or link or hashlib.sha256((title + text).encode()).hexdigest()
        )
        published = _date(_child_text(element, "pubDate", "published", "updated", "date"))
        entries.append(FeedEntry(guid, title, link, text, published))
    return entries


def entry_id(feed: str, guid: str) -> str:
    return f"{feed}-{hashlib.sha256(guid.encode()).hexdigest()[:20]}"


class FeedPoller:
    def __init__(
        self,
        feed: Feed,
        extractor: Extractor,
        publisher: Publisher,
        redis: aredis.Redis,
        names: StreamNames,
    ) -> None:
        self.feed = feed
        self.extractor = extractor
        self.publisher = publisher
        self.redis = redis
        self.state_key = names.key("feed", feed.name)
        self.slot_key = names.key("feed", feed.name, "slot")
        self.log = get_logger(stage="ingest", component="feeds", feed=feed.name)
        self.failures = 0
        self.tried = False
        """True once the first poll (or the decision to skip it) is behind: burst mode waits for it."""

    async def run(self, client: httpx.AsyncClient) -> None:
        while True:
            wait = self.feed.interval
            try:
                if await self.redis.set(self.slot_key, "1", nx=True, ex=max(1, int(self.feed.interval))):
                    wait = await self.poll(client)
                else:
                    wait = max(1.0, float(await self.redis.ttl(self.slot_key)))
                self.failures = 0 if wait == self.feed.interval else self.failures
            except Exception as error:
                self.failures += 1
                wait = min(MAX_BACKOFF, self.feed.interval * 2**self.failures)
                self.log.warning("feed poll failed", error=str(error), retry_in=wait)
            self.tried = True
            await asyncio.sleep(wait)

    async def poll(self, client: httpx.AsyncClient) -> float:
        """One poll; returns how long to wait before the next. Raises on a failure to retry later."""
        state: dict[Any, Any] = await self.redis.hgetall(self.state_key)
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1",
        }
        if etag := state.get(b"etag"):
            headers["If-None-Match"] = etag.decode()
        if modified := state.get(b"last_modified"):
            headers["If-Modified-Since"] = modified.decode()
        async with client.stream(
            "GET", self.feed.url, headers=headers, timeout=self.feed.timeout
        ) as response:
            if response.status_code == 304:
                self.log.info("feed unchanged")
                return self.feed.interval
            if response.status_code in (429, 503):
                after = response.headers.get("retry-after", "")
                wait = float(after) if after.isdigit() else self.feed.interval * 2
                self.log.warning("feed asks to wait", status=response.status_code, retry_in=wait)
                await self.redis.expire(self.slot_key, max(1, int(wait)))
                return max(wait, self.feed.interval)
            response.raise_for_status()
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.feed.max_bytes:
                    raise ValueError(f"feed over {self.feed.max_bytes} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            validators: dict[str | bytes, str | bytes] = {
                k: v
                for k, v in (
                    ("etag", response.headers.get("etag")),
                    ("last_modified", response.headers.get("last-modified")),
                )
                if v
            }
        tally = await self.ingest(body)
        if validators:
            await self.redis.hset(self.state_key, mapping=validators)  # type: ignore[arg-type]
        self.log.info("feed polled", **tally.as_dict())
        return self.feed.interval

    async def ingest(self, body: bytes) -> Tally:
        tally = Tally()
        try:
            entries = parse_feed(body)
        except ValueError as error:
            tally.read, tally.rejected = 1, 1
            await self.publisher.reject(self.feed.name, self.feed.url, body[:64_000], str(error))
            return tally
        reports = []
        for entry in entries:
            tally.read += 1
            report_id = entry_id(self.feed.name, entry.guid)
            try:
                reports.append(
                    self.extractor.report(
                        entry.text or entry.title,
                        self.feed.name,
                        report_id,
                        title=entry.title,
                        url=entry.link,
                        reported_at=entry.published,
                    )
                )
            except ValidationError as error:
                tally.rejected += 1
                where = f"{self.feed.url} entry {entry.guid}"
                await self.publisher.reject(self.feed.name, where, entry.text, describe_validation(error))
        for report, fresh in zip(reports, await self.publisher.publish(reports), strict=True):
            if fresh:
                tally.published_one(report.report_id)
            else:
                tally.duplicates += 1
        return tally
