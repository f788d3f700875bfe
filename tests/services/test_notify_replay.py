"""A delivery the notifier gave up on is sent once the channel works again and it is replayed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis
import redis.asyncio as aredis
from pytest_httpserver import HTTPServer

from services.notify.stage import NotifyStage
from services.ops import dlq
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
)


async def replay_notify_dead_letters(s: Settings) -> int:
    """``tradewatch dlq replay notify --all``, as the operator runs it once the cause is fixed."""
    client = aredis.Redis.from_url(s.redis_url.get_secret_value() if s.redis_url else "")
    try:
        return len(await dlq.replay(client, s.streams, dlq.DeadStage.notify, None))
    finally:
        await client.aclose()


async def test_a_replayed_dead_delivery_is_sent_and_a_delivered_one_is_not_sent_twice(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    receiver.fail_next = 1_000
    s = quick_notify(settings, tmp_path, [(receiver.url, "hook")], notify_max_attempts=2)
    publish_alerts(raw_redis, s, [numbered_alert(1)])
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    assert receiver.messages == []
    assert raw_redis.xlen(s.streams.alerts_dead) == 1

    receiver.fail_next = 0  # the channel is fixed; the operator replays the dead letter
    assert await replay_notify_dead_letters(s) == 1
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert receiver.alert_ids() == ["a-0001"]
    assert [e["event"] for e in delivery_history(raw_redis, s, "a-0001")][-1] == "sent"

    # Replaying it again (an alert the channel has now) sends nothing more.
    publish_alerts(raw_redis, s, [numbered_alert(1)])
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    assert receiver.alert_ids() == ["a-0001"]


async def test_a_replay_goes_only_to_the_channel_that_gave_up(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    # One subscription, two channels: "good" delivers, "bad" gives up. The replay is for "bad".
    good, bad = Receiver(httpserver, "/good"), Receiver(httpserver, "/bad")
    bad.fail_next = 1_000
    s = quick_notify(settings, tmp_path, [(good.url, "hook"), (bad.url, "hook")], notify_max_attempts=2)
    publish_alerts(raw_redis, s, [numbered_alert(1)])
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    assert good.alert_ids() == ["a-0001"]
    assert bad.alert_ids() == []

    bad.fail_next = 0
    assert await replay_notify_dead_letters(s) == 1
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert bad.alert_ids() == ["a-0001"]
    assert good.alert_ids() == ["a-0001"]  # not twice


async def test_messages_for_a_channel_no_longer_configured_are_dead_lettered_then_replayable(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    # A message waits out its group wait for channel "old" when the worker stops; then the
    # channel's URL changes (a rotated token, say: a new channel id). The next worker gives the
    # waiting message up with the reason instead of leaving it queued forever, and a replay
    # sends it through the channel configured now.
    old, new = Receiver(httpserver, "/old"), Receiver(httpserver, "/new")
    waiting = "version: 1\nsubscriptions:\n  - name: team\n    channels: [hook]\n    group_wait: 1h\n"
    s = quick_notify(settings, tmp_path, [(old.url, "hook")], waiting)
    publish_alerts(raw_redis, s, [numbered_alert(1)])
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "services.cli", "worker", "notify"],
        env=worker_env(s),
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )

    def accepted() -> bool:  # queued and acked: the group has read it and nothing is pending
        groups = raw_redis.xinfo_groups(s.streams.alerts) if raw_redis.exists(s.streams.alerts) else []
        return bool(groups) and groups[0]["entries-read"] == 1 and groups[0]["pending"] == 0

    try:
        assert await until(accepted), "the worker never accepted the alert"
    finally:
        proc.terminate()
        proc.wait(60)
    assert old.messages == []

    s = quick_notify(
        settings, tmp_path, [(new.url, "hook")], waiting.replace("group_wait: 1h", "group_wait: 0s")
    )
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    (dead,) = raw_redis.xrange(s.streams.alerts_dead)
    assert b"is no longer configured" in dead[1][b"dead.reason"]
    assert raw_redis.xlen(s.streams.alerts_dead) == 1

    assert await replay_notify_dead_letters(s) == 1
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert new.alert_ids() == ["a-0001"]
    assert old.messages == []
