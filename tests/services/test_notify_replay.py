"""A delivery the notifier gave up on is sent once the channel works again and it is replayed."""

from __future__ import annotations

from pathlib import Path

import redis
import redis.asyncio as aredis
from pytest_httpserver import HTTPServer

from schemas.streams import StreamNames
from services.notify.stage import NotifyStage
from services.ops import dlq
from services.settings import Settings
from tests.pipeline import Receiver, run_burst
from tests.services.test_notify_delivery import configure, history, make_alert, publish


async def test_a_replayed_dead_delivery_is_sent_and_a_delivered_one_is_not_sent_twice(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    receiver = Receiver(httpserver)
    receiver.fail_next = 1_000
    s = configure(settings, tmp_path, [(receiver.url, "hook")], notify_max_attempts=2)
    publish(raw_redis, s, [make_alert(1)])
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    assert receiver.messages == []
    assert raw_redis.xlen(s.streams.alerts_dead) == 1

    receiver.fail_next = 0  # the channel is fixed; the operator replays the dead letter
    names: StreamNames = s.streams
    client = aredis.Redis.from_url(s.redis_url.get_secret_value() if s.redis_url else "")
    try:
        replayed = await dlq.replay(client, names, dlq.DeadStage.notify, None)
    finally:
        await client.aclose()
    assert len(replayed) == 1
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert receiver.alert_ids() == ["a-0001"]
    assert [e["event"] for e in history(raw_redis, s, "a-0001")][-1] == "sent"

    # Replaying it again (an alert the channel has now) sends nothing more.
    publish(raw_redis, s, [make_alert(1)])
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    assert receiver.alert_ids() == ["a-0001"]


async def test_a_replay_goes_only_to_the_channel_that_gave_up(
    settings: Settings, raw_redis: redis.Redis, httpserver: HTTPServer, tmp_path: Path
) -> None:
    # One subscription, two channels: "good" delivers, "bad" gives up. The replay is for "bad".
    good, bad = Receiver(httpserver, "/good"), Receiver(httpserver, "/bad")
    bad.fail_next = 1_000
    s = configure(settings, tmp_path, [(good.url, "hook"), (bad.url, "hook")], notify_max_attempts=2)
    publish(raw_redis, s, [make_alert(1)])
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])
    assert good.alert_ids() == ["a-0001"]
    assert bad.alert_ids() == []

    bad.fail_next = 0
    client = aredis.Redis.from_url(s.redis_url.get_secret_value() if s.redis_url else "")
    try:
        assert len(await dlq.replay(client, s.streams, dlq.DeadStage.notify, None)) == 1
    finally:
        await client.aclose()
    await run_burst(s, lambda ctx: [NotifyStage(ctx)])

    assert bad.alert_ids() == ["a-0001"]
    assert good.alert_ids() == ["a-0001"]  # not twice
