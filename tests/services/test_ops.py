"""What operators rely on, against a real server: owned publishing, dead letters, status, metrics."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from services import metrics
from services.ops.heartbeat import Heartbeat
from services.ops.status import snapshot
from services.rules.stage import RulesStage
from services.runtime import Consumes, build, deadletter
from services.server import free_port
from services.settings import Settings
from services.wire import Entry
from tests.fixtures.news_facts import NEWS_REPORT
from tests.helpers import ROOT, until
from tests.pipeline import Receiver, new_context, run_burst, run_cli, write_channels, write_subscriptions


def _read_as(raw_redis: redis.Redis, stream: str, consumer: str) -> list[Entry]:
    reply = raw_redis.xreadgroup("rules", consumer, {stream: ">"}, count=100)
    return [Entry(i.decode(), f) for i, f in reply[0][1]]


async def test_a_stalled_worker_does_not_publish_a_batch_another_consumer_reclaimed(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    raw_redis.xgroup_create(names.reports, "rules", id="0", mkstream=True)
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
    raw_redis.xadd(names.reports, {"report": "{not json"})
    entries = _read_as(raw_redis, names.reports, "stalled")
    # The worker stalls past reclaim_idle; another consumer's reclaimer takes the batch over.
    raw_redis.xautoclaim(names.reports, "rules", "rescuer", 0, "0-0")

    stalled = RulesStage(new_context(settings.model_copy(update={"consumer": "stalled"})))
    await stalled.start()
    await stalled.handle(entries, stalled.partitions[0])  # it wakes up and finishes its batch

    assert raw_redis.xlen(names.alerts) == 0  # nothing published from a batch no longer its own
    assert raw_redis.xlen(names.reports_dead) == 0
    assert raw_redis.xpending(names.reports, "rules")["consumers"] == [{"name": b"rescuer", "pending": 2}]

    rescuer = RulesStage(new_context(settings.model_copy(update={"consumer": "rescuer"})))
    await rescuer.start()
    await rescuer.handle([Entry(e.id, e.fields, 2) for e in entries], rescuer.partitions[0])
    published = raw_redis.xlen(names.alerts)
    assert published > 0
    assert raw_redis.xlen(names.reports_dead) == 1  # the bad one, dead-lettered by its owner
    assert raw_redis.xpending(names.reports, "rules")["pending"] == 0
    ids = [json.loads(f[b"alert"])["alert_id"] for _, f in raw_redis.xrange(names.alerts)]
    assert len(ids) == len(set(ids))

    await stalled.handle(entries, stalled.partitions[0])  # even a second wake-up publishes nothing
    assert raw_redis.xlen(names.alerts) == published


async def test_every_log_line_is_json_and_redacted_the_libraries_lines_too(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    # The whole pipeline at debug level, whose alerts meet a receiver that refuses them and
    # echoes the channel's token: FastStream, Apprise, uvicorn and asyncio all log, and every
    # line on stderr is one JSON object with the token masked.
    token = "tok-9b7e51aa42c0"
    httpserver.expect_request("/hook", method="POST").respond_with_data(
        f"refused: token {token} expired", status=500
    )
    url = f"json://127.0.0.1:{httpserver.port}/hook?token=${{TW_TEST_HOOK_TOKEN}}"
    raw_redis.xadd(settings.streams.reports, {"report": json.dumps(NEWS_REPORT)})

    code, out, err = await run_cli(
        settings, "up", "--burst",
        TW_TEST_HOOK_TOKEN=token,
        TRADEWATCH_LOG_LEVEL="debug",
        TRADEWATCH_CHANNELS_FILE=str(write_channels(tmp_path / "channels.yaml", [(url, "hook")])),
        TRADEWATCH_SUBSCRIPTIONS_FILE=str(write_subscriptions(tmp_path / "subscriptions.yaml")),
        TRADEWATCH_NOTIFY_MAX_ATTEMPTS="1",
        TRADEWATCH_NOTIFY_GROUP_WAIT="0s",
        TRADEWATCH_HTTP_PORT="0",
    )  # fmt: skip

    assert code == 0, err[-3000:]
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # each one JSON
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    libraries = {line["logger"].split(".")[0] for line in lines if "logger" in line}
    assert {"apprise", "asyncio", "uvicorn"} <= libraries, libraries
    assert any(line.get("component") == "faststream" for line in lines)
    assert any(
        line.get("logger") == "apprise" and line["level"] == "warning" and "error=500" in line["event"]
        for line in lines
    )
    assert token not in err
    assert token not in out


async def test_make_run_reads_the_samples_says_what_it_found_and_again_that_nothing_is_new(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    # `make run` is `tradewatch up --feed config/samples`; --burst ends it once all is handled.
    samples = ROOT / "config/samples"
    files = sorted(p.name for p in samples.iterdir() if p.is_file())
    articles = [name for name in files if not name.endswith(".jsonl")]
    rows = [
        line
        for name in files
        if name.endswith(".jsonl")
        for line in (samples / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    reports = len(articles) + len(rows)
    local = "version: 1\nsubscriptions:\n  - name: local\n    channels: [local]\n    min_severity: low\n"
    env = {
        "TRADEWATCH_CHANNELS_FILE": str(
            write_channels(tmp_path / "channels.yaml", [("twconsole://", "local")])
        ),
        "TRADEWATCH_SUBSCRIPTIONS_FILE": str(write_subscriptions(tmp_path / "subscriptions.yaml", local)),
        "TRADEWATCH_HTTP_PORT": "0",
    }

    async def make_run() -> tuple[str, list[dict[str, Any]]]:
        code, out, err = await run_cli(settings, "up", "--feed", "config/samples", "--burst", **env)
        assert code == 0, err[-3000:]
        return out, [json.loads(line) for line in err.splitlines() if line.strip()]

    out, lines = await make_run()
    fed = sorted(Path(line["file"]).name for line in lines if line["event"] == "file ingested")
    assert fed == files  # the reports and articles, not expected/alerts.jsonl beside them
    (summary,) = [line for line in lines if "feed" in line]
    assert summary["event"] == f"{reports} new reports"
    assert raw_redis.xlen(settings.streams.reports_rejected) == 0
    assert "\n=== " in out  # the alerts, on the console

    out, lines = await make_run()
    (summary,) = [line for line in lines if "feed" in line]
    assert summary["event"] == (
        f"{reports} reports already seen, nothing new: `tradewatch alerts list` shows what was sent"
    )
    assert (summary["read"], summary["duplicates"]) == (reports, reports)
    assert "===" not in out  # nothing is sent twice


async def test_dlq_list_show_replay_purge(settings: Settings, raw_redis: redis.Redis) -> None:
    names = settings.streams
    consumes = Consumes(names.reports, "rules", names.reports_dead)
    raw_redis.xgroup_create(names.reports, "rules", id="0", mkstream=True)
    # A good report the rules stage gave up on during an outage, and a report that is poison.
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
    raw_redis.xadd(names.reports, {"report": json.dumps({"report_id": 42})})
    entries = _read_as(raw_redis, names.reports, "gave-up")
    ctx = new_context(settings)
    await deadletter.bury(
        ctx.redis,
        "rules",
        consumes,
        [deadletter.DeadLetter(Entry(entries[0].id, entries[0].fields, 6), "outage")],
    )
    await run_burst(settings, lambda c: [RulesStage(c)])  # reclaims the poison, dead-letters it
    await ctx.redis.aclose()

    code, out, _ = await run_cli(settings, "dlq", "list", "rules", "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows[0]["reason"] == "outage"
    assert rows[0]["deliveries"] == "6"
    assert "report_id" in rows[1]["reason"]  # the reason says what is wrong with it
    code, out, _ = await run_cli(settings, "dlq", "show", "rules", rows[0]["id"])
    assert code == 0
    assert json.loads(json.loads(out)["fields"]["report"])["report_id"] == NEWS_REPORT["report_id"]

    code, _, err = await run_cli(settings, "dlq", "purge", "rules")
    assert code == 1
    assert "--yes" in err
    assert raw_redis.xlen(names.reports_dead) == 2  # nothing deleted without --yes

    code, out, _ = await run_cli(settings, "dlq", "replay", "rules", rows[0]["id"])
    assert code == 0
    assert raw_redis.xlen(names.reports_dead) == 1
    replayed = raw_redis.xrevrange(names.reports, count=1)[0][1]
    assert set(replayed) == {b"report"}  # the original fields only, no dead.* annotations
    await run_burst(settings, lambda c: [RulesStage(c)])
    assert raw_redis.xlen(names.alerts) > 0

    code, _, err = await run_cli(settings, "dlq", "replay", "ingest", "--all")
    assert code == 1
    assert "ingest it again" in err
    code, out, _ = await run_cli(settings, "dlq", "purge", "rules", "--yes")
    assert code == 0
    assert raw_redis.xlen(names.reports_dead) == 0


async def test_status_shows_groups_workers_dead_letters_and_a_stalled_group(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    names = settings.streams
    raw_redis.xadd(names.reports, {"report": json.dumps(NEWS_REPORT)})
    await run_burst(settings, lambda c: [RulesStage(c)])
    # Work for a group nobody reads: the notify group exists, no consumer ever polled it.
    raw_redis.xgroup_create(names.alerts, "notify", id="0")

    code, out, _ = await run_cli(settings, "status", "--json")
    assert code == 1  # a stalled group makes status exit 1
    status = json.loads(out)
    groups = {g["group"]: g for g in status["groups"]}
    assert groups["rules"]["lag"] == 0
    assert groups["rules"]["pending"] == 0
    assert not groups["rules"]["stalled"]
    assert groups["notify"]["stalled"]
    assert groups["notify"]["lag"] == raw_redis.xlen(names.alerts)
    assert "no consumer" in groups["notify"]["stall_reason"]
    streams = {s["name"]: s["length"] for s in status["streams"]}
    assert streams[names.reports] == 1
    assert status["dead_letters"] == {"rules": 0, "notify": 0, "ingest": 0}
    assert status["ruleset_version"] == raw_redis.get(names.key("ruleset", "version")).decode()
    assert status["last_alert_at"] is not None
    assert status["workers"] == []  # the burst worker exited cleanly and removed its heartbeat


async def test_heartbeat_is_shown_and_a_stall_is_alerted_once(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer
) -> None:
    receiver = Receiver(httpserver, "/ops")
    s = settings.model_copy(update={"stall_alert_url": SecretStr(receiver.url)})
    names = s.streams
    raw_redis.xadd(names.alerts, {"alert": "{}"})
    raw_redis.xgroup_create(names.alerts, "notify", id="0")
    ctx = new_context(s)
    watchers = [
        Heartbeat(ctx.redis, s.model_copy(update={"consumer": name}), ["notify"]) for name in ("a", "b")
    ]
    for w in watchers:
        await w.beat()
        assert [g.group for g in await w.watch()] == ["notify"]

    assert len(receiver.messages) == 1  # two watchers, one alert
    assert "notify" in receiver.messages[0]["message"]
    snap = await snapshot(ctx.redis, s)
    assert sorted(w.consumer for w in snap.workers) == ["a", "b"]
    await watchers[0].clear()
    snap = await snapshot(ctx.redis, s)
    assert [w.consumer for w in snap.workers] == ["b"]
    await ctx.redis.aclose()


def _get(url: str) -> tuple[int, str]:
    """(status, body); 0 while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except urllib.error.URLError:
        return 0, ""


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_worker_serves_metrics_health_and_readiness(
    settings: Settings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    s = settings.model_copy(update={"metrics_port": port, "heartbeat_interval": 0.2})
    base = f"http://127.0.0.1:{port}"
    before = _sample(metrics.render().decode(), "tradewatch_messages_in_total", stage="rules")
    ctx = new_context(s)
    app = build(s, [RulesStage(ctx)], ctx)
    task = asyncio.create_task(app.run())
    try:

        async def ready() -> bool:
            return (await asyncio.to_thread(_get, f"{base}/readyz"))[0] == 200

        assert await until(ready), "the worker never said it was ready"
        assert (await asyncio.to_thread(_get, f"{base}/healthz"))[0] == 200
        raw_redis.xadd(s.streams.reports, {"report": json.dumps(NEWS_REPORT)})
        assert await until(lambda: raw_redis.exists(s.streams.alerts)), "no alert"
        text = ""

        async def counted() -> bool:  # the alerts are stored before the counters move on
            nonlocal text
            _, text = await asyncio.to_thread(_get, f"{base}/metrics")
            return _sample(text, "tradewatch_messages_out_total", stage="rules") > before

        assert await until(counted), text
        assert _sample(text, "tradewatch_messages_in_total", stage="rules") == before + 1
        assert _sample(text, "tradewatch_alerts_total", rule="shipyard-equipment", severity="critical") >= 1
        assert _sample(text, "tradewatch_handle_seconds_count", stage="rules") >= 1
        assert "tradewatch_heartbeat_timestamp_seconds" in text
        assert (await asyncio.to_thread(_get, f"{base}/nope"))[0] == 404
    finally:
        app.exit()
        await asyncio.wait_for(task, 30)
    assert (await asyncio.to_thread(_get, f"{base}/healthz"))[0] == 0  # it went with the worker
