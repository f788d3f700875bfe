"""RSS and Atom feeds polled from a local HTTP server: entries once, ETag and Last-Modified honoured."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from services.ingest.publisher import Publisher
from services.ingest.registry import Feed, Sources
from services.ingest.sources.feeds import FeedPoller, parse_feed
from services.ingest.stage import IngestStage
from services.runtime import Context
from services.settings import Settings
from tests.pipeline import published_reports, run_burst

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Border news</title>
{items}
</channel></rss>"""
ITEM = """<item><title>{title}</title><link>http://127.0.0.1/{guid}</link><guid>{guid}</guid>
<pubDate>Fri, 06 Mar 2026 09:00:00 GMT</pubDate><description>{text}</description></item>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
<entry><id>urn:x:1</id><title>Excavators at Sinuiju</title><link rel="alternate" href="http://127.0.0.1/a"/>
<updated>2026-03-06T10:00:00Z</updated>
<content type="html">&lt;p&gt;Second-hand excavators crossed from Dandong.&lt;/p&gt;</content></entry>
</feed>"""


class FeedServer:
    """Serves a feed with an ETag and a Last-Modified, answering 304 to a matching request."""

    def __init__(self, httpserver: HTTPServer) -> None:
        self.items = [
            ITEM.format(
                title="Lathes via Dandong",
                guid="a-1",
                text="&lt;p&gt;Used CNC lathes crossed from Dandong to Sinuiju for 65,000 yuan each.&lt;/p&gt;",
            ),
            ITEM.format(title="Weather", guid="a-2", text="Snow in Hyesan, no trade news."),
        ]
        self.version = 1
        self.requests: list[dict[str, str]] = []
        httpserver.expect_request("/rss.xml").respond_with_handler(self.handle)
        self.url = httpserver.url_for("/rss.xml")

    def handle(self, request: Request) -> Response:
        self.requests.append(dict(request.headers))
        etag = f'"v{self.version}"'
        modified = f"Fri, 06 Mar 2026 0{self.version}:00:00 GMT"
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        body = RSS.format(items="\n".join(self.items))
        return Response(
            body, content_type="application/rss+xml", headers={"ETag": etag, "Last-Modified": modified}
        )


async def test_polls_are_conditional_and_entries_published_once(
    ctx: Context, httpserver: HTTPServer, raw_redis: redis.Redis
) -> None:
    server = FeedServer(httpserver)
    sources = Sources.from_settings(ctx.settings)
    feed = Feed(name="border-news", url=server.url, interval=60)
    publisher = Publisher(ctx.redis, ctx.settings.streams, 60)
    poller = FeedPoller(feed, sources.extractor(), publisher, ctx.redis, ctx.settings.streams)

    async with httpx.AsyncClient(trust_env=False) as client:
        await poller.poll(client)
        await poller.poll(client)  # unchanged: a 304, nothing read
        server.version = 2
        server.items.append(
            ITEM.format(title="Tractors", guid="a-3", text="Tractors through Hunchun to Rason.")
        )
        await poller.poll(client)

    assert "If-None-Match" not in server.requests[0]
    assert server.requests[1]["If-None-Match"] == '"v1"'
    assert server.requests[1]["If-Modified-Since"] == "Fri, 06 Mar 2026 01:00:00 GMT"
    assert "tradewatch" in server.requests[0]["User-Agent"]
    reports = published_reports(raw_redis, ctx.settings.streams)
    assert [r["url"] for r in reports] == [
        "http://127.0.0.1/a-1",
        "http://127.0.0.1/a-2",
        "http://127.0.0.1/a-3",
    ]
    lathes = reports[0]
    assert str(lathes["report_id"]).startswith("border-news-")
    assert lathes["source"] == "border-news"
    assert lathes["crossing"] == "Dandong-Sinuiju"
    assert lathes["destination_country"] == "KP"
    items: list[dict[str, object]] = lathes["items"]  # type: ignore[assignment]
    item = next(i for i in items if str(i["description"]).startswith("CNC lathes"))
    assert item["condition"] == "used"
    assert item["currency"] == "USD"
    assert str(lathes["reported_at"]).startswith("2026-03-06T09:00:00")


async def test_a_broken_feed_is_rejected_with_its_url(ctx: Context, raw_redis: redis.Redis) -> None:
    sources = Sources.from_settings(ctx.settings)
    feed = Feed(name="broken", url="http://127.0.0.1:9/feed", interval=60)
    poller = FeedPoller(feed, sources.extractor(), Publisher(ctx.redis, ctx.settings.streams, 60), ctx.redis,
                        ctx.settings.streams)  # fmt: skip
    tally = await poller.ingest(b"<html><body>not a feed</body></html>")
    assert tally.as_dict() == {"read": 1, "published": 0, "duplicates": 0, "rejected": 1}
    entry = raw_redis.xrange(ctx.settings.streams.reports_rejected)[0][1]
    assert entry[b"where"] == b"http://127.0.0.1:9/feed"
    assert b"not a feed" in entry[b"reason"]
    billion_laughs = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><rss>&b;</rss>'
    )
    with pytest.raises(ValueError, match="not a feed"):
        parse_feed(billion_laughs)


def test_atom_entries() -> None:
    (entry,) = parse_feed(ATOM.encode())
    assert entry.guid == "urn:x:1"
    assert entry.link == "http://127.0.0.1/a"
    assert entry.text == "Second-hand excavators crossed from Dandong."
    assert entry.published is not None


async def test_the_stage_polls_the_feeds_in_its_config(
    settings: Settings, httpserver: HTTPServer, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    server = FeedServer(httpserver)
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(
        f"version: 1\nfeeds:\n  - {{name: border-news, url: '{server.url}', interval: 1h}}\n"
    )
    s = settings.model_copy(update={"sources_file": sources_file})

    await run_burst(s, lambda ctx: [IngestStage(ctx)])
    await run_burst(s, lambda ctx: [IngestStage(ctx)])  # within the interval: no second request

    assert len(server.requests) == 1
    assert len(published_reports(raw_redis, s.streams)) == 2
