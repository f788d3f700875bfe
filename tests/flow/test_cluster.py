"""The pipeline on a Redis Cluster: three masters started on loopback ports inside the test run.

Reports go in both ways (a raw XADD to a partition, as a producer in another language would, and
through the publisher), spread over partitions whose hash tags land on all three shards; rules and
notify consume every partition, and a real HTTP channel receives each alert exactly once.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from redis.cluster import RedisCluster

from schemas.report import ImportReport
from schemas.streams import StreamNames
from services import server
from services.ingest.publisher import Publisher
from services.notify.stage import NotifyStage
from services.ops import status
from services.rules.stage import RulesStage
from services.settings import Settings
from tests.fixtures.news_facts import NEWS_REPORT
from tests.pipeline import Receiver, new_context, run_burst, write_channels, write_subscriptions

PARTITIONS = 6
CLUSTER_ARGS = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "5000",
]


def _cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10,000) is free too, as a cluster node needs."""
    for _ in range(200):
        port = random.randint(20_000, 45_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise AssertionError("no free pair of loopback ports for a cluster node")


def _cluster_tools() -> str:
    cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if cli is None:
        pytest.skip("no redis-cli or valkey-cli on PATH: cannot create a Redis Cluster for this test")
    try:
        server.find_server_binary()
    except server.ServerUnavailable as error:
        pytest.skip(f"no Redis-compatible server binary to start cluster nodes: {error}")
    return cli


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli = _cluster_tools()
    base = tmp_path_factory.mktemp("cluster")
    nodes = [
        server.LocalServer(base / f"node{i}", port=_cluster_port(), appendonly=False, extra_args=CLUSTER_ARGS)
        for i in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while True:
            states = []
            for node in nodes:
                with redis.Redis(port=node.port) as client:
                    info = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
                states.append(info.get("cluster_state") in ("ok", b"ok"))
            if all(states):
                break
            assert time.monotonic() < deadline, "the cluster never reached cluster_state:ok"
            time.sleep(0.2)
        yield f"redis+cluster://127.0.0.1:{nodes[0].port}"
    finally:
        for node in nodes:
            node.stop()


def _report(n: int) -> dict[str, object]:
    return NEWS_REPORT | {"report_id": f"cluster-{n:03d}"}


async def test_pipeline_on_a_three_master_cluster(
    cluster_url: str, settings: Settings, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = settings.model_copy(update={
        "redis_url": SecretStr(cluster_url),
        "partitions": PARTITIONS,
        "namespace": f"tw-{uuid.uuid4().hex[:8]}",
        "channels_file": write_channels(tmp_path / "channels.yaml", [(receiver.url, "hook")]),
        "subscriptions_file": write_subscriptions(tmp_path / "subscriptions.yaml"),
    })  # fmt: skip
    assert s.clustered
    names = s.streams
    node = RedisCluster.from_url(cluster_url.replace("redis+cluster://", "redis://"))
    try:
        # The partitions spread over all three shards.
        owners = {p: node.get_node_from_key(names.report_stream(p)).port for p in range(PARTITIONS)}
        assert len(set(owners.values())) == 3, owners
        for p in range(PARTITIONS):  # each partition's streams share one slot
            slots = {node.keyslot(k) for k in (names.report_stream(p), names.alert_stream(p))}
            assert len(slots) == 1

        # Half the reports by a raw XADD to their partition, half through the publisher.
        raw = [_report(n) for n in range(12)]
        for report in raw:
            node.xadd(names.reports_for(str(report["report_id"])), {"report": json.dumps(report)})
        ctx = new_context(s)
        published = [ImportReport.model_validate(_report(n)) for n in range(12, 24)]
        assert await Publisher(ctx.redis, names, s.dedup_retention).publish(published) == [True] * 12
        assert await Publisher(ctx.redis, names, s.dedup_retention).publish(published) == [False] * 12
        await ctx.redis.aclose()
        used = {p for p in range(PARTITIONS) if node.xlen(names.report_stream(p))}
        assert {owners[p] for p in used} == set(owners.values()), "reports did not reach every shard"

        await run_burst(s, lambda ctx: [RulesStage(ctx), NotifyStage(ctx)], timeout=120)

        alerted = [
            json.loads(f[b"alert"]) for p in range(PARTITIONS) for _, f in node.xrange(names.alert_stream(p))
        ]
        for p in range(PARTITIONS):  # a report's alerts are on its own partition
            for _, f in node.xrange(names.alert_stream(p)):
                assert names.partition(json.loads(f[b"alert"])["report_id"]) == p
        assert {a["report_id"] for a in alerted} == {f"cluster-{n:03d}" for n in range(24)}
        got = receiver.alert_ids()
        assert sorted(got) == sorted(a["alert_id"] for a in alerted)  # nothing lost, nothing doubled
        for p in range(PARTITIONS):
            for stream in (names.report_stream(p), names.alert_stream(p)):
                assert node.xpending(stream, "rules" if "reports" in stream else "notify")["pending"] == 0
            assert node.xlen(names.reports_dead_stream(p)) == 0
            assert node.xlen(names.alerts_dead_stream(p)) == 0

        # Status sees every partition.
        ctx = new_context(s)
        snap = await status.snapshot(ctx.redis, s, with_workers=False)
        await ctx.redis.aclose()
        lengths = {i.name: i.length for i in snap.streams}
        assert sum(lengths[n] for n in names.all_reports) == 24
        assert sum(lengths[n] for n in names.all_alerts) == len(alerted)
        assert len(list(snap.groups)) == 2 * PARTITIONS
    finally:
        node.close()


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
