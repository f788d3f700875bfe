"""The pipeline on a Redis Cluster: three masters started on loopback ports inside the test run.

Reports go in both ways (a raw XADD to a partition, as a producer in another language would, and
through the publisher), spread over partitions whose hash tags land on all three shards; rules and
notify consume every partition, and a real HTTP channel receives each alert exactly once.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import Result
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from redis.cluster import RedisCluster
from typer.testing import CliRunner

from schemas.report import ImportReport
from schemas.streams import StreamNames
from services import server
from services.cli import app as cli
from services.ingest.publisher import Publisher
from services.logging import configure as configure_logging
from services.notify.stage import NotifyStage
from services.ops import status
from services.rules.stage import RulesStage
from services.settings import Settings
from tests.fixtures.news_facts import NEWS_REPORT
from tests.helpers import wait_until
from tests.pipeline import Receiver, new_context, quick_notify, redis_cli, run_burst, with_channels

pytestmark = pytest.mark.slow  # a cluster of three servers started for the module

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
    cli = redis_cli("creating a Redis Cluster for this test")
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

        def all_ok() -> bool:
            states = []
            for node in nodes:
                with redis.Redis(port=node.port) as client:
                    info = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
                states.append(info.get("cluster_state") in ("ok", b"ok"))
            return all(states)

        assert wait_until(all_ok, interval=0.2), "the cluster never reached cluster_state:ok"
        yield f"redis+cluster://127.0.0.1:{nodes[0].port}"
    finally:
        for node in nodes:
            node.stop()


WITHIN_HORIZON = 3650 * 86_400.0
"""A backfill horizon that takes the news report (dated March 2026) as current: every alert of it
is notified, as these tests of partitions and delivery expect (backfill has tests of its own)."""


def _report(n: int) -> dict[str, object]:
    return NEWS_REPORT | {"report_id": f"cluster-{n:03d}"}


async def test_pipeline_on_a_three_master_cluster(
    cluster_url: str, settings: Settings, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = with_channels(
        settings, tmp_path, [(receiver.url, "hook")],
        redis_url=SecretStr(cluster_url), partitions=PARTITIONS, namespace=f"tw-{uuid.uuid4().hex[:8]}",
        backfill_horizon=WITHIN_HORIZON,
    )  # fmt: skip
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


# --- the operator commands (alerts, silence, dlq) on partitioned streams of a cluster


def _on_cluster(
    cluster_url: str, settings: Settings, tmp_path: Path, receiver: Receiver, **extra: Any
) -> Settings:
    return quick_notify(
        settings, tmp_path, [(receiver.url, "hook")],
        redis_url=SecretStr(cluster_url), partitions=PARTITIONS, namespace=f"tw-{uuid.uuid4().hex[:8]}",
        backfill_horizon=WITHIN_HORIZON, **extra,
    )  # fmt: skip


def _tw(s: Settings, *args: str) -> Result:
    """The ``tradewatch`` command as an operator runs it against the cluster (stdout not a terminal).

    It runs its own event loop, as from a shell, so it gets a thread; and this test's loop waits
    for it without running anything else: the runner swaps ``sys.stdout`` for the whole process,
    and a task still winding down from a burst (FastStream logs each subscriber task's end) would
    otherwise write into the command's output.
    """
    env = {
        "TRADEWATCH_REDIS_URL": s.redis_url.get_secret_value() if s.redis_url else "",
        "TRADEWATCH_PARTITIONS": str(s.partitions),
        "TRADEWATCH_NAMESPACE": s.namespace,
    }
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(CliRunner().invoke, cli, list(args), env=env).result()
    configure_logging()  # the command logged to the runner's stream, closed by now
    return result


def _partition_on_each_shard(node: RedisCluster, names: StreamNames) -> list[int]:
    """One report partition per shard (the first of each), so every command has to reach all three."""
    first: dict[int, int] = {}
    for p in range(PARTITIONS):
        first.setdefault(node.get_node_from_key(names.report_stream(p)).port, p)
    assert len(first) == 3, first
    return sorted(first.values())


def _report_on(names: StreamNames, partition: int, prefix: str, **fields: object) -> dict[str, object]:
    """A report (the news report's items) whose id falls on the given partition."""
    n = 0
    while names.partition(f"{prefix}-{n}") != partition:
        n += 1
    return NEWS_REPORT | {"report_id": f"{prefix}-{n}"} | fields


def _alert_ids(node: RedisCluster, names: StreamNames) -> dict[str, str]:
    """alert id -> report id, over every alert partition."""
    alerts = [json.loads(f[b"alert"]) for stream in names.all_alerts for _, f in node.xrange(stream)]
    return {a["alert_id"]: a["report_id"] for a in alerts}


async def _pipeline_on_each_shard(node: RedisCluster, s: Settings, prefix: str) -> list[int]:
    """The news report on a partition of each shard, through rules and notify; the partitions."""
    names = s.streams
    shards = _partition_on_each_shard(node, names)
    for p in shards:
        node.xadd(names.report_stream(p), {"report": json.dumps(_report_on(names, p, prefix))})
    await run_burst(s, lambda ctx: [RulesStage(ctx), NotifyStage(ctx)], timeout=120)
    return shards


async def test_alerts_and_silence_commands_on_a_cluster(
    cluster_url: str, settings: Settings, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = _on_cluster(cluster_url, settings, tmp_path, receiver)
    names = s.streams
    node = RedisCluster.from_url(cluster_url.replace("redis+cluster://", "redis://"))
    try:
        shards = await _pipeline_on_each_shard(node, s, "op")
        delivered = _alert_ids(node, names)
        assert sorted(receiver.alert_ids()) == sorted(delivered)

        listing = _tw(s, "alerts", "list", "--limit", "100")
        assert listing.exit_code == 0, listing.output
        lines = listing.stdout.splitlines()
        assert len(lines) == len(delivered)
        for alert_id, report_id in delivered.items():
            (line,) = [line for line in lines if f"  {alert_id}  " in line]
            assert f"report {report_id}" in line
            assert line.endswith("[sent 1]")
        alert_id = sorted(delivered)[0]
        shown = _tw(s, "alerts", "show", alert_id)
        assert shown.exit_code == 0, shown.output
        assert shown.stdout.startswith(alert_id)
        events = [line.split()[1] for line in shown.stdout.splitlines()[3:]]
        assert events == ["queued", "sent"]
        assert _tw(s, "alerts", "show", "a-nope").exit_code == 1

        # A silence on one source holds its reports' alerts, on whichever shard they land.
        added = _tw(s, "silence", "add", "--match", "source=held", "--for", "1h",
                    "--by", "kim", "--reason", "known shipment")  # fmt: skip
        assert added.exit_code == 0, added.output
        silence_id = added.stdout.strip()
        for p in shards:
            held = _report_on(names, p, "held", source="held")
            node.xadd(names.report_stream(p), {"report": json.dumps(held)})
        await run_burst(s, lambda ctx: [RulesStage(ctx), NotifyStage(ctx)], timeout=120)
        held_ids = set(_alert_ids(node, names)) - set(delivered)
        assert held_ids
        assert sorted(receiver.alert_ids()) == sorted(delivered)  # nothing of the held source sent
        listed = _tw(s, "silence", "list")
        assert listed.exit_code == 0, listed.output
        (line,) = listed.stdout.splitlines()
        assert line.startswith(f"{silence_id}  active")
        assert f"silenced {len(held_ids)}" in line
        assert "by kim" in line
        listing = _tw(s, "alerts", "list", "--limit", "100")
        held_lines = [line for line in listing.stdout.splitlines() if line.split()[1] in held_ids]
        assert len(held_lines) == len(held_ids)
        assert all(line.endswith("[silenced 1]") for line in held_lines)
        shown = _tw(s, "alerts", "show", min(held_ids))
        assert [line.split()[1] for line in shown.stdout.splitlines()[3:]] == ["silenced"]

        expired = _tw(s, "silence", "expire", silence_id)
        assert expired.exit_code == 0, expired.output
        assert _tw(s, "silence", "list").stdout.strip() == "no active silences"
        assert f"{silence_id}  expired" in _tw(s, "silence", "list", "--all").stdout
        after = _report_on(names, shards[0], "after", source="held")
        node.xadd(names.report_stream(shards[0]), {"report": json.dumps(after)})
        await run_burst(s, lambda ctx: [RulesStage(ctx), NotifyStage(ctx)], timeout=120)
        sent_after = {a for a, r in _alert_ids(node, names).items() if r == after["report_id"]}
        assert sent_after
        assert sorted(receiver.alert_ids()) == sorted(set(delivered) | sent_after)
    finally:
        node.close()


async def test_dlq_commands_for_reports_on_a_cluster(
    cluster_url: str, settings: Settings, httpserver: HTTPServer, tmp_path: Path
) -> None:
    s = _on_cluster(cluster_url, settings, tmp_path, Receiver(httpserver))
    names = s.streams
    node = RedisCluster.from_url(cluster_url.replace("redis+cluster://", "redis://"))
    try:
        shards = _partition_on_each_shard(node, names)
        # A malformed report on a partition of each shard, as a producer in another language might write.
        for p in shards:
            node.xadd(names.report_stream(p), {"report": json.dumps({"report_id": f"bad-{p}", "items": 7})})
        await run_burst(s, lambda ctx: [RulesStage(ctx)], timeout=120)
        assert [node.xlen(names.reports_dead_stream(p)) for p in shards] == [1, 1, 1]
        # Entry ids are per stream: two shards that dead-letter in the same millisecond give their
        # dead letters the same id. Make it so for the last two (same fields, one common id).
        common = f"{int(time.time() * 1000) + 1}-0"
        for p in shards[1:]:
            ((old_id, fields),) = node.xrange(names.reports_dead_stream(p))
            node.xadd(names.reports_dead_stream(p), fields, id=common)
            node.xdel(names.reports_dead_stream(p), old_id)

        listed = _tw(s, "dlq", "list", "rules", "--json")
        assert listed.exit_code == 0, listed.output
        rows = {json.loads(line)["id"]: json.loads(line) for line in listed.stdout.splitlines()}
        assert len(rows) == 3  # one row, one id, for each dead letter
        ref = {p: next(i for i in rows if i.endswith(f"@p{p}")) for p in shards}
        ((first_id, _),) = node.xrange(names.reports_dead_stream(shards[0]))
        assert ref == {shards[0]: f"{first_id.decode()}@p{shards[0]}"} | {
            p: f"{common}@p{p}" for p in shards[1:]
        }
        assert all("items" in r["reason"] for r in rows.values())

        for p in shards:
            shown = _tw(s, "dlq", "show", "rules", ref[p])
            assert shown.exit_code == 0, shown.output
            fields = json.loads(shown.stdout)["fields"]
            assert json.loads(fields["report"])["report_id"] == f"bad-{p}"
            assert fields["dead.stream"] == names.report_stream(p)
        # A bare id is enough where it names one dead letter; where it names two, nothing is done.
        shown = _tw(s, "dlq", "show", "rules", first_id.decode())
        assert json.loads(json.loads(shown.stdout)["fields"]["report"])["report_id"] == f"bad-{shards[0]}"
        for command in (["show"], ["replay"], ["purge", "--yes"]):
            refused = _tw(s, "dlq", command[0], "rules", common, *command[1:])
            assert refused.exit_code == 1, refused.output
            assert f"{common}@p{shards[1]}" in refused.output
            assert f"{common}@p{shards[2]}" in refused.output
        assert [node.xlen(names.reports_dead_stream(p)) for p in shards] == [1, 1, 1]

        # Replayed with nothing fixed: back on its own partition, and dead-lettered there again.
        again = shards[1]
        replayed = _tw(s, "dlq", "replay", "rules", ref[again])
        assert replayed.exit_code == 0, replayed.output
        assert [node.xlen(names.reports_dead_stream(p)) for p in shards] == [1, 0, 1]
        (back,) = node.xrevrange(names.report_stream(again), count=1)
        assert set(back[1]) == {b"report"}  # the original fields only
        assert json.loads(replayed.stdout) == {"replayed": ref[again], "as": back[0].decode()}
        await run_burst(s, lambda ctx: [RulesStage(ctx)], timeout=120)
        ((again_id, fields),) = node.xrange(names.reports_dead_stream(again))
        assert fields[b"dead.entry_id"] == back[0]
        ref[again] = f"{again_id.decode()}@p{again}"
        listed = _tw(s, "dlq", "list", "rules")
        assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == set(ref.values())

        # Purged: one by its id, then the rest, each from the partition that holds it.
        assert _tw(s, "dlq", "purge", "rules", ref[shards[2]]).exit_code == 1  # no --yes
        purged = _tw(s, "dlq", "purge", "rules", ref[shards[2]], "--yes")
        assert purged.exit_code == 0, purged.output
        assert [node.xlen(names.reports_dead_stream(p)) for p in shards] == [1, 1, 0]
        purged = _tw(s, "dlq", "purge", "rules", "--yes")
        assert purged.exit_code == 0, purged.output
        assert purged.stdout.startswith("2 purged")
        assert [node.xlen(names.reports_dead_stream(p)) for p in range(PARTITIONS)] == [0] * PARTITIONS
        assert _tw(s, "dlq", "list", "rules").stdout == ""
    finally:
        node.close()


async def test_notify_dead_letters_are_replayed_and_delivered_once_on_a_cluster(
    cluster_url: str, settings: Settings, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    receiver.fail_next = 1_000  # the channel refuses every send
    s = _on_cluster(cluster_url, settings, tmp_path, receiver, notify_max_attempts=1)
    names = s.streams
    node = RedisCluster.from_url(cluster_url.replace("redis+cluster://", "redis://"))
    try:
        shards = await _pipeline_on_each_shard(node, s, "refused")
        alerts = _alert_ids(node, names)
        assert receiver.messages == []
        dead = {
            p: [json.loads(f[b"alert"]) for _, f in node.xrange(names.alerts_dead_stream(p))] for p in shards
        }
        assert sorted(a["alert_id"] for letters in dead.values() for a in letters) == sorted(alerts)
        for p, letters in dead.items():  # each alert's dead letter is on its report's partition
            assert {names.partition(a["report_id"]) for a in letters} == {p}

        listed = _tw(s, "dlq", "list", "notify", "--limit", "100")
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert len(rows) == len(alerts)
        assert all("gave up after 1 attempts" in r["reason"] for r in rows)
        for p in shards:
            shown = _tw(s, "dlq", "show", "notify", next(r["id"] for r in rows if r["id"].endswith(f"@p{p}")))
            assert names.partition(json.loads(json.loads(shown.stdout)["fields"]["alert"])["report_id"]) == p

        receiver.fail_next = 0  # the channel works again; the operator replays every dead letter
        replayed = _tw(s, "dlq", "replay", "notify", "--all")
        assert replayed.exit_code == 0, replayed.output
        assert len(replayed.stdout.splitlines()) == len(alerts)
        assert [node.xlen(names.alerts_dead_stream(p)) for p in range(PARTITIONS)] == [0] * PARTITIONS
        await run_burst(s, lambda ctx: [NotifyStage(ctx)], timeout=120)

        assert sorted(receiver.alert_ids()) == sorted(alerts)  # each alert once
        for p in range(PARTITIONS):
            assert node.xpending(names.alert_stream(p), "notify")["pending"] == 0
        shown = _tw(s, "alerts", "show", sorted(alerts)[0])
        assert [line.split()[1] for line in shown.stdout.splitlines()[3:]] == [
            "queued",
            "dead",
            "queued",
            "sent",
        ]

        # Replayed again (nothing is dead now, so the alerts go back by hand): nothing is sent twice.
        for p in shards:
            for _, fields in node.xrange(names.alert_stream(p)):
                node.xadd(names.alert_stream(p), fields)
        await run_burst(s, lambda ctx: [NotifyStage(ctx)], timeout=120)
        assert sorted(receiver.alert_ids()) == sorted(alerts)
    finally:
        node.close()
