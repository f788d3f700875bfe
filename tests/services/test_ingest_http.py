"""POST /reports over real loopback HTTP, served by the ingest stage, against a real server."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis
import structlog
from pydantic import SecretStr

from services.ingest.sources import api as http_api
from services.ingest.sources.api import RefusalLog, key_matches
from services.ingest.stage import IngestStage
from services.runtime import Context
from tests.fixtures.news_facts import NEWS_REPORT
from tests.pipeline import rejected

KEY = "k-7f3a9c-test"


@asynccontextmanager
async def served(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
    """The ingest stage serving POST /reports, and a client for it."""
    stage = IngestStage(ctx)
    await stage.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{stage.http_port}", trust_env=False
        ) as client:
            yield client
    finally:
        await stage.stop()


@pytest.fixture
async def api(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
    ctx.settings.api_keys = [SecretStr("other-key"), SecretStr(KEY)]
    ctx.settings.http_max_body_bytes = 20_000
    async with served(ctx) as client:
        yield client


def auth(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", **extra}


async def test_one_report_or_a_batch_is_accepted_once(
    api: httpx.AsyncClient, ctx: Context, raw_redis: redis.Redis
) -> None:
    one = await api.post("/reports", json=NEWS_REPORT, headers=auth())
    assert one.status_code == 202, one.text
    assert one.json()["report_ids"] == [NEWS_REPORT["report_id"]]
    assert one.json()["published"] == 1

    batch = [NEWS_REPORT, {"text": "used lathes seen at Sinuiju"}]  # the second has no id: a hash
    again = await api.post("/reports", json=batch, headers={"X-API-Key": KEY})
    assert again.status_code == 202, again.text
    body = again.json()
    assert body["report_ids"][0] == NEWS_REPORT["report_id"]
    assert body["report_ids"][1].startswith("http-")
    assert (body["published"], body["duplicates"]) == (1, 1)
    assert raw_redis.xlen(ctx.settings.streams.reports) == 2
    stored = json.loads(raw_redis.xrange(ctx.settings.streams.reports)[1][1][b"report"])
    assert stored["source"] == "http"


async def test_keys_are_required(api: httpx.AsyncClient, raw_redis: redis.Redis, ctx: Context) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]}, {"Authorization": KEY}):
        response = await api.post("/reports", json=NEWS_REPORT, headers=headers)
        assert response.status_code == 401, headers
    assert raw_redis.xlen(ctx.settings.streams.reports) == 0
    assert rejected(raw_redis, ctx.settings.streams) == []  # strangers cannot fill the rejected stream


async def test_refused_keys_are_logged_by_fingerprint_at_most_once_a_minute_per_key(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_api, "REFUSAL_LOG_INTERVAL", 0.5)  # a minute, shortened
    ctx.settings.api_keys = [SecretStr(KEY)]
    stage = IngestStage(ctx)
    wrong, other = "wrong-key-5d1c0e", "another-wrong-key"
    with structlog.testing.capture_logs() as logs:
        await stage.start()
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{stage.http_port}", trust_env=False
            ) as client:

                async def post(headers: dict[str, str]) -> None:
                    response = await client.post("/reports", json=NEWS_REPORT, headers=headers)
                    assert response.status_code == 401

                for _ in range(5):
                    await post({"Authorization": f"Bearer {wrong}"})
                await post({"X-API-Key": other})
                await post({})
                await post({})
                await asyncio.sleep(0.6)  # the interval is over: the next refusal is logged, with a count
                await post({"X-API-Key": wrong})
                assert (await client.post("/reports", json=NEWS_REPORT, headers=auth())).status_code == 202
        finally:
            await stage.stop()

    refused = [e for e in logs if e["event"] == "API key refused"]

    def fingerprint(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()[:8]

    assert [(e["key_fingerprint"], e["suppressed"], e["reason"]) for e in refused] == [
        (fingerprint(wrong), 0, "unknown key"),
        (fingerprint(other), 0, "unknown key"),
        ("none", 0, "no key given"),
        (fingerprint(wrong), 4, "unknown key"),  # the four refusals not logged in the interval
    ]
    assert all(e["client"] == "127.0.0.1" and e["request_id"].startswith("req-") for e in refused)
    shown = json.dumps(logs)
    assert wrong not in shown
    assert other not in shown
    assert KEY not in shown


def test_a_caller_trying_many_keys_cannot_flood_the_log() -> None:
    now = [0.0]
    with structlog.testing.capture_logs() as logs:
        refusals = RefusalLog(structlog.get_logger(), interval=60, max_keys=3, clock=lambda: now[0])
        for n in range(50):
            refusals.refused(f"fp{n}")
        now[0] = 61.0  # a minute later, the first keys' lines are over: room again
        refusals.refused("fp0")
        refusals.refused("*")
    assert [(e["key_fingerprint"], e["suppressed"]) for e in logs] == [
        ("fp0", 0), ("fp1", 0), ("fp2", 0), ("*", 0),  # the 4th key on: one line for all the others
        ("fp0", 0), ("*", 46),
    ]  # fmt: skip


def test_key_comparison() -> None:
    keys = [SecretStr("alpha"), SecretStr("beta")]
    assert key_matches("beta", keys)
    assert not key_matches("bet", keys)
    assert not key_matches("", keys)
    assert not key_matches("beta", [])


async def test_no_configured_key_refuses_every_post(ctx: Context) -> None:
    async with served(ctx) as client:
        response = await client.post("/reports", json=NEWS_REPORT, headers={"X-API-Key": "anything"})
    assert response.status_code == 401
    assert "no API key is configured" in response.json()["error"]


async def test_invalid_reports_get_every_path_and_message_and_are_recorded(
    api: httpx.AsyncClient, ctx: Context, raw_redis: redis.Redis
) -> None:
    batch: list[dict[str, Any]] = [
        NEWS_REPORT,
        {"report_id": "b", "items": [{"hs_code": "12x"}], "colour": "red"},
        {"report_id": "c"},
    ]
    response = await api.post("/reports", json=batch, headers=auth(**{"X-Request-ID": "partner-42"}))
    assert response.status_code == 422
    body = response.json()
    assert body["request_id"] == "partner-42"
    paths = {p["path"]: p["message"] for p in body["problems"]}
    assert "an HS code is 2 to 10 digits" in paths["1.items.0.hs_code"]
    assert "Extra inputs are not permitted" in paths["1.colour"]
    assert "needs at least one of items or text" in paths["2"]
    assert raw_redis.xlen(ctx.settings.streams.reports) == 0  # all or nothing
    (entry,) = rejected(raw_redis, ctx.settings.streams)
    assert entry["source"] == "http"
    assert entry["where"] == "request partner-42"
    assert json.loads(entry["raw"]) == batch
    assert "1.items.0.hs_code" in entry["reason"]


async def test_bad_requests_are_refused_and_the_next_one_still_works(
    api: httpx.AsyncClient, ctx: Context, raw_redis: redis.Redis
) -> None:
    not_json = await api.post(
        "/reports", content=b"{nope", headers=auth(**{"Content-Type": "application/json"})
    )
    assert not_json.status_code == 400
    assert "not JSON" in not_json.json()["error"]
    form = await api.post("/reports", content=b"a=1", headers=auth(**{"Content-Type": "text/plain"}))
    assert form.status_code == 415
    big = {**NEWS_REPORT, "text": "x" * 30_000}
    too_big = await api.post("/reports", json=big, headers=auth())
    assert too_big.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while streaming
        for _ in range(30):
            yield b" " * 1_000

    streamed = await api.post(
        "/reports", content=chunks(), headers=auth(**{"Content-Type": "application/json"})
    )
    assert streamed.status_code == 413
    scalar = await api.post("/reports", json=[1, 2], headers=auth())
    assert scalar.status_code == 422

    where = [e["where"] for e in rejected(raw_redis, ctx.settings.streams)]
    assert len(where) == 5
    assert all(w.startswith("request req-") for w in where)
    ok = await api.post("/reports", json=NEWS_REPORT, headers=auth())
    assert ok.status_code == 202


async def test_openapi_health_and_readiness(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    post = document["paths"]["/reports"]["post"]
    assert {"202", "401", "413", "422"} <= set(post["responses"])
    schema = document["components"]["schemas"]["ImportReport"]
    assert "report_id" in schema["properties"]
    assert "ReportItem" in document["components"]["schemas"]
    assert (await api.get("/health")).json() == {"status": "ok"}
    ready = await api.get("/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
