"""Shared fixtures: the shipped catalog, rates and rule pack, compiled once per run; a real
Redis-compatible server and an isolated namespace per test.

The server: ``TRADEWATCH_TEST_REDIS_URL`` if set, else the Redis on 127.0.0.1:6379 if one
answers, else an embedded Valkey started for the session; only tests that ask for it (the
services and flow tiers) start or reach it. Every test gets its own namespace (stream and key
prefix), deleted afterwards, so tests never see each other's data.

Hypothesis profiles: ``full`` (the default) and ``fast`` (``--hypothesis-profile fast``, as
``make test-fast`` runs the unit tier): property tests size their example counts with
``tests.helpers.examples``. Plain helpers (paths, waiting for a condition) are in tests/helpers.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from services import server
from services.goods.catalog import Catalog, load_catalog
from services.money import Rates, load_rates
from services.rules.engine import RuleSet
from services.rules.loader import load_ruleset
from services.runtime import Context
from services.settings import Settings
from tests.helpers import CATALOG_FILE, RATES_FILE, ROOT, RULES_FILE

hypothesis_settings.register_profile("full")
hypothesis_settings.register_profile("fast", max_examples=20)
hypothesis_settings.load_profile("full")


# ---------------------------------------------------------------- the shipped configuration
# Read-only objects, built once: loading the catalog takes a third of a second.


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(CATALOG_FILE)


@pytest.fixture(scope="session")
def rates() -> Rates:
    return load_rates(RATES_FILE)


@pytest.fixture(scope="session")
def pack() -> RuleSet:
    """The shipped rule pack with the shipped catalog and rates, as a worker loads it."""
    return load_ruleset([RULES_FILE], CATALOG_FILE, RATES_FILE)


# ---------------------------------------------------------------- a server and a namespace


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
        catalog_file=CATALOG_FILE,
        rules_files=[RULES_FILE],
        rates_file=RATES_FILE,
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


# The store of record's fixtures (``database_url`` over SQLite and PostgreSQL, ``store``).
pytest_plugins = ["tests.dbfixtures"]
