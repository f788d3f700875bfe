"""Delivery you can trust, against real channels: retries, dead letters, grouping, digests,
silences, re-alert windows, a slow channel beside a fast one, and a notifier killed mid-batch."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from click.testing import Result
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from services.cli import app as cli
from services.logging import configure as configure_logging
from services.notify.silences import Silence
from services.notify.stage import NotifyStage
from services.settings import Settings
from tests.helpers import ROOT, until
from tests.pipeline import (
    Receiver,
    delivery_history,
    numbered_alert,
    publish_alerts,
    quick_notify,
    run_burst,
    worker_env,
    write_subscriptions,
)


async def test_receiver_that_fails_then_recovers_gets_each_alert_once(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    receiver.fail_next = 3
    s = quick_notify(settings, tmp_path, [(receiver.url, "hook")])
    publish_alerts(raw_redis, s, [numbered_alert(1)])

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert receiver.alert_ids() == ["a-0001"]
    events = delivery_history(raw_redis, s, "a-0001")
    assert [e["event"] for e in events] == ["queued", "failed", "failed", "failed", "sent"]
    assert [e.get("attempt") for e in events[1:]] == [1, 2, 3, 4]
    assert all("retry_at" in e for e in events[1:4])
    assert raw_redis.xlen(s.streams.alerts_dead) == 0
    assert raw_redis.xpending(s.streams.alerts, "notify")["pending"] == 0


async def test_a_channel_that_never_recovers_is_dead_lettered_with_the_reason(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    receiver.fail_next = 1_000
    s = quick_notify(settings, tmp_path, [(receiver.url, "hook")], notify_max_attempts=3)
    publish_alerts(raw_redis, s, [numbered_alert(1)])

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])  # ends: nothing left but the dead

    assert receiver.messages == []
    (dead,) = raw_redis.xrange(s.streams.alerts_dead)
    fields = dead[1]
    assert json.loads(fields[b"alert"])["alert_id"] == "a-0001"
    assert fields[b"dead.deliveries"] == b"3"
    assert b"gave up after 3 attempts" in fields[b"dead.reason"]
    assert fields[b"dead.subscription"] == b"team"
    assert [e["event"] for e in delivery_history(raw_redis, s, "a-0001")][-1] == "dead"


async def test_a_failed_delivery_names_the_channel_and_what_the_receiver_answered(
    settings: Settings,
    raw_redis: redis.Redis,
    httpserver: HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    # The receiver refuses with a 500 and says why, echoing the token the channel's URL holds.
    token = "tok-51c2e9d0a7"
    monkeypatch.setenv("TW_TEST_HOOK_TOKEN", token)
    reply = json.dumps({"error": "queue full, try again later", "token": token})
    httpserver.expect_request("/hook", method="POST").respond_with_data(reply, status=500)
    url = f"json://127.0.0.1:{httpserver.port}/hook?token=${{TW_TEST_HOOK_TOKEN}}"
    s = quick_notify(settings, tmp_path, [(url, "hook")], notify_max_attempts=2)
    publish_alerts(raw_redis, s, [numbered_alert(1)])

    with structlog.testing.capture_logs() as logs:
        await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    channel = f"json://127.0.0.1:{httpserver.port}/…"  # as Channel.display shows it

    def says_what_happened(error: str) -> None:
        assert error.startswith(f"{channel}: HTTP 500; "), error
        assert 'reply: {"error": "queue full, try again later", "token": "***"}' in error, error
        assert token not in error

    lines = [e for e in logs if e["event"] in ("delivery failed", "delivery dead-lettered")]
    assert [e["event"] for e in lines] == ["delivery failed", "delivery dead-lettered"]
    for line in lines:
        says_what_happened(line["error"])
    recorded = [f for _, f in raw_redis.xrange(s.streams.deliveries)]
    assert [f[b"outcome"] for f in recorded] == [b"failed", b"dead"]
    for fields in recorded:
        says_what_happened(fields[b"error"].decode())
    (dead,) = raw_redis.xrange(s.streams.alerts_dead)
    says_what_happened(dead[1][b"dead.reason"].decode())

    # The dead letter's list names the subscription and the channel that gave up on it.
    env = {
        "TRADEWATCH_REDIS_URL": s.redis_url.get_secret_value() if s.redis_url else "",
        "TRADEWATCH_NAMESPACE": s.namespace,
    }
    listed = await asyncio.to_thread(CliRunner().invoke, cli, ["dlq", "list", "notify", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["subscription"] == "team"
    assert row["channel"] == dead[1][b"dead.channel"].decode()
    assert row["channel"].startswith("hook-")
    says_what_happened(row["reason"])


async def test_a_burst_of_200_alerts_is_one_grouped_message_and_one_digest_email(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path, smtp: Any
) -> None:
    controller, box = smtp
    receiver = Receiver(httpserver)
    mail = f"mailto://127.0.0.1:{controller.port}?to=desk@example.org&from=tw@example.org&mode=insecure&format=html"
    subs = (
        "version: 1\nsubscriptions:\n"
        "  - name: chat\n    channels: [hook]\n    group_by: [crossing]\n    group_wait: 2s\n"
        "  - name: desk\n    channels: [mail]\n    mode: digest\n    digest_interval: 1s\n"
    )
    s = quick_notify(settings, tmp_path, [(receiver.url, "hook"), (mail, "mail")], subs)
    alerts = [numbered_alert(n) for n in range(200)]
    publish_alerts(raw_redis, s, alerts)

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert len(receiver.messages) == 1
    assert sorted(receiver.alert_ids()) == sorted(a.alert_id for a in alerts)
    assert receiver.messages[0]["title"].startswith("[HIGH] 200 cases at Dandong-Sinuiju; the worst: ")
    assert len(box.messages) == 1
    digest = email.message_from_bytes(box.messages[0], policy=email.policy.default)
    html = digest.get_body(preferencelist=("html",))
    assert html is not None
    markup = html.get_content()
    assert "Case 1 of 200" in markup  # one digest, every case in it
    assert "r-0000" in markup
    assert "r-0199" in markup


async def test_a_backlog_is_coalesced_per_subscription_and_each_message_is_recorded(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    # 25 reports' messages due at once (a backlog) for two subscriptions: "chat" takes up to 10
    # per send, "tickets" wants one report per request (coalesce: 1). Each message is still
    # recorded on its own.
    chat, tickets = Receiver(httpserver, "/chat"), Receiver(httpserver, "/tickets")
    subs = (
        "version: 1\nsubscriptions:\n"
        "  - name: chat\n    channels: [chat]\n"
        "  - name: tickets\n    channels: [tickets]\n    coalesce: 1\n    rules: [unscr2397-machinery]\n"
    )
    s = quick_notify(
        settings, tmp_path, [(chat.url, "chat"), (tickets.url, "tickets")], subs, notify_coalesce=10
    )
    alerts = [numbered_alert(n) for n in range(25)]
    # A second rule on five of the reports: same group key, so the same message as the first.
    alerts += [numbered_alert(n, rule_id="luxury-goods", alert_id=f"a-{n:04d}-lux") for n in range(5)]
    publish_alerts(raw_redis, s, alerts)

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    def sends(receiver: Receiver) -> list[list[str]]:
        return [[a["alert_id"] for a in m["alerts"]] for m in receiver.messages]

    assert sorted(i for ids in sends(tickets) for i in ids) == sorted(f"a-{n:04d}" for n in range(25))
    assert all(len(ids) == 1 for ids in sends(tickets))  # one report per request
    assert sorted(i for ids in sends(chat) for i in ids) == sorted(a.alert_id for a in alerts)
    assert 3 <= len(sends(chat)) < 25  # 25 messages in sends of at most 10
    assert all(len({i.removesuffix("-lux") for i in ids}) <= 10 for ids in sends(chat))
    # each message and each alert has its own record: 25 + 30 delivered alerts
    assert raw_redis.xlen(s.streams.key("deliveries")) == 55
    for a in alerts[:3] + alerts[-2:]:
        events = [e["event"] for e in delivery_history(raw_redis, s, a.alert_id)]
        assert events.count("sent") == (1 if a.alert_id.endswith("-lux") else 2)
    assert raw_redis.xpending(s.streams.alerts, "notify")["pending"] == 0


async def test_a_silence_added_while_a_message_waits_holds_it_at_send_time(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    # The first send fails; while the message waits for its retry, someone silences the rule.
    # The retry finds the silence: the held alert is not sent, and the other alert of the same
    # message (another rule) still is.
    requests: list[list[str]] = []

    def handler(request: Request) -> Response:
        ids = [a["alert_id"] for a in json.loads(request.get_data())["alerts"]]
        requests.append(ids)
        if len(requests) == 1:
            silence = Silence(
                id="s-test", matchers={"rule_id": "luxury-goods"}, created_by="kim", reason="known",
                created_at=time.time(), expires_at=time.time() + 3600,
            )  # fmt: skip
            raw_redis.hset(s.streams.key("notify", "silences"), silence.id, silence.model_dump_json())
            return Response("unavailable", status=503)
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    s = quick_notify(settings, tmp_path, [(f"json://127.0.0.1:{httpserver.port}/hook", "hook")])
    alerts = [numbered_alert(1), numbered_alert(1, rule_id="luxury-goods", alert_id="a-0001-lux")]
    publish_alerts(raw_redis, s, alerts)

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert sorted(requests[0]) == ["a-0001", "a-0001-lux"]  # one message, both alerts
    assert requests[1:] == [["a-0001"]]  # the retry: the silenced alert left out
    lux = delivery_history(raw_redis, s, "a-0001-lux")
    assert [e["event"] for e in lux] == ["queued", "failed", "silenced"]
    assert lux[-1]["detail"] == "s-test"
    assert [e["event"] for e in delivery_history(raw_redis, s, "a-0001")] == ["queued", "failed", "sent"]
    assert raw_redis.hget(s.streams.key("notify", "silenced"), "s-test") == b"1"


async def test_silences_that_ended_before_the_history_retention_are_forgotten(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = quick_notify(settings, tmp_path, [(receiver.url, "hook")], notify_history_retention=86_400.0)
    now = time.time()
    key = s.streams.key("notify", "silences")
    for sid, ended in (("s-old", now - 2 * 86_400), ("s-recent", now - 3600), ("s-live", now + 3600)):
        silence = Silence(
            id=sid, matchers={"rule_id": "none"}, created_by="kim", reason="test",
            created_at=ended - 60, expires_at=ended,
        )  # fmt: skip
        raw_redis.hset(key, sid, silence.model_dump_json())
    raw_redis.hset(s.streams.key("notify", "silenced"), "s-old", 3)
    publish_alerts(raw_redis, s, [numbered_alert(1)])

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert sorted(raw_redis.hkeys(key)) == [b"s-live", b"s-recent"]
    assert raw_redis.hget(s.streams.key("notify", "silenced"), "s-old") is None
    assert receiver.alert_ids() == ["a-0001"]


async def test_silenced_alerts_are_recorded_and_counted_not_sent(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = quick_notify(settings, tmp_path, [(receiver.url, "hook")])
    env = {
        "TRADEWATCH_REDIS_URL": s.redis_url.get_secret_value() if s.redis_url else "",
        "TRADEWATCH_NAMESPACE": s.namespace,
    }
    runner = CliRunner()

    async def tw(*args: str) -> Result:
        # The commands run their own event loop, as from a shell: give them a thread.
        result = await asyncio.to_thread(runner.invoke, cli, list(args), env=env)
        configure_logging()  # the command logged to the runner's stream, now closed
        return result

    added = await tw(*["silence", "add", "--match", "rule_id=unscr2397-machinery", "--match",
                                "crossing=dandong sinuiju", "--for", "7d", "--by", "kim", "--reason", "known shipment"])  # fmt: skip
    assert added.exit_code == 0, added.output
    silence_id = added.output.strip()
    publish_alerts(raw_redis, s, [numbered_alert(1), numbered_alert(2, crossing="Hunchun-Rason")])

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert receiver.alert_ids() == ["a-0002"]
    assert [e["event"] for e in delivery_history(raw_redis, s, "a-0001")] == ["silenced"]
    listed = await tw("silence", "list")
    assert silence_id in listed.output
    assert "silenced 1" in listed.output
    assert "by kim" in listed.output
    assert (await tw("silence", "expire", silence_id)).exit_code == 0
    assert "no active silences" in (await tw("silence", "list")).output
    publish_alerts(raw_redis, s, [numbered_alert(3)])  # the silence is over: sent again
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    assert receiver.alert_ids() == ["a-0002", "a-0003"]

    shown = await tw("alerts", "show", "a-0002")
    assert shown.exit_code == 0, shown.output
    assert "queued" in shown.output
    assert "sent" in shown.output
    assert "team" in shown.output
    listing = (await tw("alerts", "list")).output
    assert "a-0001" in listing
    assert "silenced 1" in listing
    assert "a-0002" in listing
    assert "sent 1" in listing
    assert (await tw("alerts", "show", "a-nope")).exit_code == 1


async def test_the_same_case_within_the_realert_window_is_sent_once(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    s = quick_notify(settings, tmp_path, [(receiver.url, "hook")])
    case = {"dedup_key": "radio-telecom|importer=ryugyong", "realert": 3600.0}
    publish_alerts(raw_redis, s, [numbered_alert(1, **case), numbered_alert(2, **case), numbered_alert(3)])

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    publish_alerts(raw_redis, s, [numbered_alert(4, **case)])  # a later report of the same case
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert sorted(receiver.alert_ids()) == ["a-0001", "a-0003"]
    assert delivery_history(raw_redis, s, "a-0004")[0]["detail"] == "same case as a-0001"


async def test_a_slow_channel_does_not_hold_up_a_fast_one(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    fast = Receiver(httpserver)
    released = threading.Event()
    slow_saw: list[bool] = []

    def slow_handler(request: Request) -> Response:
        # Holds the request until the fast channel has its message (or gives up after 30 s).
        slow_saw.append(released.wait(30))
        return Response("ok")

    def fast_handler(request: Request) -> Response:
        response = fast._handle(request)
        released.set()
        return response

    httpserver.clear()
    httpserver.expect_request("/hook", method="POST").respond_with_handler(fast_handler)
    slow_server = HTTPServer(host="127.0.0.1", port=0)
    slow_server.expect_request("/slow", method="POST").respond_with_handler(slow_handler)
    slow_server.start()
    try:
        slow_url = f"json://127.0.0.1:{slow_server.port}/slow?rto=40"
        # The slow channel is listed first: its message is due and taken first.
        s = quick_notify(settings, tmp_path, [(slow_url, "hook"), (fast.url, "hook")])
        publish_alerts(raw_redis, s, [numbered_alert(1)])
        await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    finally:
        slow_server.stop()

    assert fast.alert_ids() == ["a-0001"]
    assert slow_saw == [True], "the slow channel's send was not overtaken by the fast channel's"


@pytest.mark.slow  # a worker process started and killed, four times
@pytest.mark.parametrize(("concurrency", "coalesce"), [(1, 1), (4, 1), (1, 3), (3, 2)])
async def test_a_notifier_killed_mid_batch_resends_nothing_it_recorded(
    settings: Settings,
    raw_redis: redis.Redis,
    httpserver: HTTPServer,
    tmp_path: Path,
    concurrency: int,
    coalesce: int,
) -> None:
    # With several sends in flight per channel, each is recorded right after it completes: a
    # crash repeats at most the messages in flight then (sent, not yet recorded), never more.
    # The 20 messages are due at once, so each send carries ``coalesce`` of them.
    arrived: list[str] = []
    sends: list[list[str]] = []
    blocked = threading.Event()
    killed = threading.Event()

    handling = [0]  # requests in the handler now
    last_seen = [time.monotonic()]  # when the receiver last started or finished one

    def handler(request: Request) -> Response:
        handling[0] += 1
        last_seen[0] = time.monotonic()
        try:
            ids = [a["alert_id"] for a in json.loads(request.get_data())["alerts"]]
            assert len(ids) <= coalesce
            if len(sends) == 5 and not killed.is_set():
                blocked.set()  # the sixth send is in flight: the worker is killed now
                killed.wait(60)
                return Response("too late", status=503)
            sends.append(ids)
            arrived.extend(ids)
            return Response("ok")
        finally:
            handling[0] -= 1
            last_seen[0] = time.monotonic()

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    s = quick_notify(
        settings,
        tmp_path,
        [(f"json://127.0.0.1:{httpserver.port}/hook", "hook")],
        notify_send_timeout=3.0,
        notify_send_concurrency=concurrency,
        notify_coalesce=coalesce,
    )
    alerts = [numbered_alert(n) for n in range(20)]
    publish_alerts(raw_redis, s, alerts)
    env = worker_env(
        s, notify_group_wait="0s", notify_send_timeout="3s",
        notify_send_concurrency=str(concurrency), notify_coalesce=str(coalesce),
    )  # fmt: skip
    with (tmp_path / "worker.log").open("w") as log:
        command = [sys.executable, "-m", "services.cli", "worker", "notify"]
        # A worker process to kill; the test's loop has nothing else to do meanwhile.
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)  # noqa: ASYNC220
    try:
        assert blocked.wait(60), (tmp_path / "worker.log").read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        killed.set()
        if proc.poll() is None:
            proc.kill()
    # Requests the killed worker had already written are still answered (and counted) after the
    # kill, one after another: take the count once the receiver has had nothing in hand for a
    # full second (a request queued behind another starts within milliseconds of it).
    assert await until(lambda: handling[0] == 0 and time.monotonic() - last_seen[0] > 1.0)
    before_restart = list(sends)
    # With several sends in flight, the others may land between the sixth blocking and the kill.
    assert len(before_restart) == 5 if concurrency == 1 else 5 <= len(before_restart) <= 4 + concurrency
    assert sum(len(ids) for ids in before_restart) >= 5 * coalesce
    assert raw_redis.xpending(s.streams.alerts, "notify")["pending"] == 0  # all 20 were queued and acked

    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert sorted(set(arrived)) == sorted(a.alert_id for a in alerts)  # nothing lost
    repeated = [i for i in set(arrived) if arrived.count(i) > 1]
    if concurrency == 1:
        assert not repeated  # nothing twice: the sixth send never reached the channel
    else:
        # at most the messages of the other sends in flight
        assert len(arrived) - len(set(arrived)) <= (concurrency - 1) * coalesce
        assert all(arrived.count(i) == 2 for i in repeated)
        sent_before = [i for ids in before_restart for i in ids]
        assert all(i in sent_before for i in repeated)  # only what was sent before the kill
    assert sends[: len(before_restart)] == before_restart


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    configure_logging()  # the commands logged to the runner's stream, closed by now


def test_notify_preview_renders_without_sending(
    settings: Settings, tmp_path: Path, restore_logging: None
) -> None:
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(numbered_alert(7).model_dump_json())
    subs = write_subscriptions(tmp_path / "subscriptions.yaml")
    env = {
        "TRADEWATCH_SUBSCRIPTIONS_FILE": str(subs),
        "TRADEWATCH_CHANNELS_FILE": str(tmp_path / "absent.yaml"),
    }
    runner = CliRunner()
    shown = runner.invoke(
        cli, ["notify", "preview", str(alert_file), "--subscription", "team", "--format", "markdown"], env=env
    )
    assert shown.exit_code == 0, shown.output
    assert "title: [HIGH] lathe 7 to North Korea via Dandong-Sinuiju" in shown.output
    assert "lathe 7 (HS 8458.11)" in shown.output
    unknown = runner.invoke(cli, ["notify", "preview", str(alert_file), "--subscription", "nobody"], env=env)
    assert unknown.exit_code == 2
    assert "no subscription 'nobody'" in unknown.output


def test_notify_preview_shows_exactly_what_each_channel_receives(
    settings: Settings, tmp_path: Path, restore_logging: None
) -> None:
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(numbered_alert(7).model_dump_json())
    channels = tmp_path / "channels.yaml"
    channels.write_text(
        "version: 1\nurls:\n"
        "  - mailto://127.0.0.1:2525?to=desk@example.org&from=tw@example.org&mode=insecure:\n"
        "      - tag: desk\n"
        "  - json://127.0.0.1:9/hook:\n      - tag: desk\n"
    )
    subs = write_subscriptions(
        tmp_path / "subscriptions.yaml", "version: 1\nsubscriptions:\n  - name: team\n    channels: [desk]\n"
    )
    env = {"TRADEWATCH_SUBSCRIPTIONS_FILE": str(subs), "TRADEWATCH_CHANNELS_FILE": str(channels)}
    runner = CliRunner()

    def preview(*extra: str) -> str:
        shown = runner.invoke(cli, ["notify", "preview", str(alert_file), "-s", "team", *extra], env=env)
        assert shown.exit_code == 0, shown.output
        return shown.output

    both = preview()
    mail_id = next(
        line.split()[1] for line in both.splitlines() if line.startswith("=== desk-") and "mailto" in line
    )
    # A mail: its subject and both parts, as the mail channel builds them (nothing sent: port 2525
    # and port 9 have no server).
    mail = preview("--channel", mail_id)
    assert "Subject: [HIGH] lathe 7 to North Korea via Dandong-Sinuiju" in mail
    assert "--- text/plain" in mail
    assert "--- text/html" in mail
    plain = mail.split("--- text/plain", 1)[1].split("--- text/html", 1)[0]
    assert "Findings" in plain.splitlines()
    assert "<h2" in mail.split("--- text/html", 1)[1]
    # A JSON webhook: the payload it posts, with the case and the alerts as objects.
    webhook = both.split("json://", 1)[1]
    document = json.loads(webhook[webhook.index("{") : webhook.rindex("}") + 1])
    assert document["title"] == "[HIGH] lathe 7 to North Korea via Dandong-Sinuiju"
    assert document["type"] == "warning"
    assert document["cases"][0]["report_id"] == "r-0007"
    assert document["alerts"][0]["alert_id"] == numbered_alert(7).alert_id
    assert "Findings" in document["message"]
    missing = runner.invoke(
        cli, ["notify", "preview", str(alert_file), "-s", "team", "--channel", "x"], env=env
    )
    assert missing.exit_code == 2
    assert "no channel 'x'" in missing.output
