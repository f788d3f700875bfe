"""Shared fixtures: a real Redis-compatible server, an isolated namespace per test.

The server: ``TRADEWATCH_TEST_REDIS_URL`` if set, else the Redis on 127.0.0.1:6379 if one
answers, else an embedded Valkey started for the session. Every test gets its own namespace
(stream and key prefix), deleted afterwards, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from services import server
from services.runtime import Context
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("TRADEWATCH_TEST_REDIS_URL"):
        yield url
        return
    if server.ping(6379):
        yield "redis://127.0.0.1:6379/0"
        return
    embedded = server.LocalServer(tmp_path_factory.mktemp("valkey"))
    embedded.start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = f"twtest-{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def settings(redis_url: str, namespace: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        namespace=namespace,
        data_dir=tmp_path / "data",
        catalog_file=ROOT / "config/catalog.yaml",
        rules_files=[ROOT / "config/rules.yaml"],
        rates_file=ROOT / "config/rates.yaml",
        channels_file=ROOT / "config/channels.yaml",
        subscriptions_file=ROOT / "config/subscriptions.yaml",
        poll_interval=0.1,
        reclaim_idle=0.5,
        inbox_interval=0.1,
        http_port=0,
        consumer=f"test-{uuid.uuid4().hex[:6]}",
    )


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[Context]:
    endpoint = server.resolve(settings)
    client = server.client(endpoint)
    yield Context(settings, endpoint, client)
    await client.aclose()


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def shared_file(*parts: str) -> Path:
    """A file under ../shared, or skip: a user's fresh clone has no ../shared."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (the team's domain data) is not beside this checkout")
    return path


# The store of record's fixtures (``database_url`` over SQLite and PostgreSQL, ``store``).
pytest_plugins = ["tests.dbfixtures"]
