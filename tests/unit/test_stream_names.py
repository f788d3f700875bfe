"""Stream and key names: the defaults unchanged, partitions tagged for a cluster."""

from __future__ import annotations

import pytest

from schemas.streams import StreamNames
from services.settings import Settings

pytestmark = pytest.mark.usefixtures("clean_env")


def test_default_key_names_are_unchanged() -> None:
    names = Settings(redis_url="redis://127.0.0.1:1/0").streams
    assert (names.reports, names.alerts) == ("tradewatch:reports", "tradewatch:alerts")
    assert (names.reports_dead, names.alerts_dead) == ("tradewatch:reports:dead", "tradewatch:alerts:dead")
    assert names.all_reports == ["tradewatch:reports"]
    assert names.all_alerts == ["tradewatch:alerts"]
    assert names.reports_for("any-report") == "tradewatch:reports"
    assert names.notify_namespace == "tradewatch"
    assert names.deliveries == "tradewatch:deliveries"


def test_partitioned_key_names_carry_hash_tags() -> None:
    names = StreamNames("tw", partitions=4)
    assert names.all_reports == [f"tw:reports:{{p{p}}}" for p in range(4)]
    assert names.alerts_for("r-1") == names.alert_stream(names.partition("r-1"))
    assert names.partition("r-1") == StreamNames("other", partitions=4).partition("r-1")  # stable
    assert StreamNames("tw", tagged=True).reports == "tw:reports:{p0}"
    assert Settings(redis_url="redis+cluster://127.0.0.1:7000").streams.is_partitioned
