"""The outbox's scripts driven directly against a real server: accept -> claim -> finish.

No stage, no FastStream, no channel: each test calls the outbox as the notify stage does and
checks the state the scripts leave behind, key by key (the names from ``services.notify.keys``).
The clock is explicit (``NOW``), so leases and schedules are tested without waiting; only the
re-alert window, which Redis expires, is waited out.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from schemas.alert import Alert
from schemas.streams import StreamNames
from services.notify import payloads
from services.notify.keys import LAYOUT, NotifyKeys
from services.notify.outbox import Claim, Claimed, Outbox, Queued, SendOutcome, script
from services.notify.payloads import AcceptCounts
from services.notify.silences import SilenceStore, first_match
from services.runtime import Context
from tests.pipeline import numbered_alert as make_alert

NOW = 1_800_000_000.0
LEASE = 30.0
Item = tuple[Alert, bytes, list[Queued]]


@pytest.fixture
def box(ctx: Context, namespace: str) -> Outbox:
    return Outbox(ctx.redis, namespace, retention=3600, dedup_retention=3600)


@pytest.fixture
def keys(namespace: str) -> NotifyKeys:
    return NotifyKeys(namespace)


def route(
    sub: str = "team",
    channels: tuple[str, ...] = ("hook",),
    *,
    bucket: str = "b-1",
    due: float = NOW,
    window: int = 0,
    dedup_key: str = "case-1",
    silence: str | None = None,
) -> Queued:
    return Queued(sub, silence, window, dedup_key, bucket, due, list(channels))


def item(alert: Alert, *routes: Queued) -> Item:
    return alert, alert.model_dump_json(exclude_none=True).encode(), list(routes)


async def accept(box: Outbox, *items: Item, now: float = NOW) -> AcceptCounts:
    return await box.accept(list(items), [], "unused-stream", "notify", now)


def counts(**nonzero: int) -> dict[str, int]:
    return {"queued": 0, "silenced": 0, "deduplicated": 0, "repeated": 0, "routed_nowhere": 0} | nonzero


async def claim(box: Outbox, channel: str = "hook", now: float = NOW, **kwargs: Any) -> Claim:
    options: dict[str, Any] = {"units": 10, "limits": {}, "flying": []} | kwargs
    return await box.claim(channel, now, LEASE, **options)


async def claim_one(box: Outbox, channel: str = "hook", now: float = NOW) -> Claimed:
    (unit,) = (await claim(box, channel, now)).units
    (message,) = unit
    return message


def events(raw: redis.Redis, keys: NotifyKeys, alert_id: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in raw.lrange(keys.history(alert_id), 0, -1)]


def event_names(raw: redis.Redis, keys: NotifyKeys, alert_id: str) -> list[str]:
    return [e["event"] for e in events(raw, keys, alert_id)]


def schedule(raw: redis.Redis, keys: NotifyKeys, channel: str = "hook") -> list[tuple[str, float]]:
    return [(m.decode(), s) for m, s in raw.zrange(keys.due(channel), 0, -1, withscores=True)]


def delivery(raw: redis.Redis, keys: NotifyKeys, delivery_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.hgetall(keys.delivery(delivery_id)).items()}


def members(raw: redis.Redis, key: str) -> set[str]:
    return {m.decode() for m in raw.smembers(key)}


# --- the whole way


async def test_an_alert_is_queued_claimed_sent_and_recorded(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    alert = make_alert(1)
    assert await accept(box, item(alert, route())) == counts(queued=1)

    assert raw_redis.get(keys.alert("a-0001")) == alert.model_dump_json(exclude_none=True).encode()
    assert raw_redis.zscore(keys.recent, "a-0001") == NOW
    assert raw_redis.exists(keys.accepted("a-0001", "team")) == 1
    ((delivery_id, due),) = schedule(raw_redis, keys)
    assert due == NOW
    assert raw_redis.get(keys.open("team", "hook", "b-1")) == delivery_id.encode()
    assert raw_redis.lrange(keys.delivery_alerts(delivery_id), 0, -1) == [b"a-0001"]
    record = delivery(raw_redis, keys, delivery_id)
    assert (record["state"], record["attempts"], record["subscription"], record["channel"]) == (
        "open", "0", "team", "hook",
    )  # fmt: skip

    got = await claim(box)
    assert got.silences == []
    assert got.next_due == NOW + LEASE  # the lease of the message just claimed
    ((message,),) = got.units
    assert message == Claimed(delivery_id, "hook", "team", 1, [alert])
    assert raw_redis.exists(keys.open("team", "hook", "b-1")) == 0  # closed to new alerts
    assert delivery(raw_redis, keys, delivery_id)["state"] == "sending"

    await box.finish([SendOutcome(message, "sent")], NOW + 1, ms=12.5)

    record = delivery(raw_redis, keys, delivery_id)
    assert (record["state"], record["last_error"]) == ("sent", "")
    assert "sent_at" in record
    assert schedule(raw_redis, keys) == []
    assert 0 < raw_redis.ttl(keys.delivery(delivery_id)) <= 3600
    queued, sent = events(raw_redis, keys, "a-0001")
    assert queued == {
        "at": payloads.iso(NOW), "event": "queued", "subscription": "team", "channel": "hook",
        "delivery": delivery_id,
    }  # fmt: skip
    assert sent == {
        "at": payloads.iso(NOW + 1), "event": "sent", "subscription": "team", "channel": "hook",
        "delivery": delivery_id, "attempt": 1, "ms": 12.5,
    }  # fmt: skip
    ((_, fields),) = raw_redis.xrange(keys.deliveries)
    assert fields == {
        b"alert_id": b"a-0001", b"rule_id": alert.rule_id.encode(), b"report_id": b"r-0001",
        b"subscription": b"team", b"channel": b"hook", b"delivery": delivery_id.encode(),
        b"attempt": b"1", b"outcome": b"sent", b"error": b"", b"at": payloads.iso(NOW + 1).encode(),
    }  # fmt: skip
    assert await claim(box, now=NOW + 3600) == Claim([], [], None)


async def test_alerts_of_a_bucket_share_one_message_until_it_is_claimed(box: Outbox) -> None:
    assert await accept(box, item(make_alert(1), route()), item(make_alert(2), route())) == counts(queued=2)
    first = await claim_one(box)
    assert [a.alert_id for a in first.alerts] == ["a-0001", "a-0002"]

    # The message is claimed: an alert of the same bucket now opens a new one.
    assert await accept(box, item(make_alert(3), route())) == counts(queued=1)
    second = await claim_one(box)
    assert second.id != first.id
    assert [a.alert_id for a in second.alerts] == ["a-0003"]


async def test_claim_takes_what_is_due_and_coalesces_a_backlog_per_subscription(box: Outbox) -> None:
    await accept(
        box,
        item(make_alert(1), route(bucket="1", due=NOW + 10)),
        item(make_alert(2), route(bucket="2", due=NOW + 11)),
        item(make_alert(3), route(bucket="3", due=NOW + 12)),
        item(make_alert(4), route("other", bucket="4", due=NOW + 13)),
    )
    early = await claim(box, now=NOW)
    assert (early.units, early.next_due) == ([], NOW + 10)

    # Two sends at most; "team" carries up to two messages a send, "other" one (no limit given).
    got = await claim(box, now=NOW + 20, units=2, limits={"team": 2})
    assert [[(m.subscription, m.alerts[0].alert_id) for m in unit] for unit in got.units] == [
        [("team", "a-0001"), ("team", "a-0002")],
        [("team", "a-0003")],
    ]
    assert got.next_due == NOW + 13  # "other" is still due: no send was left for it
    ((rest,),) = (await claim(box, now=NOW + 20, units=2, limits={"team": 2})).units
    assert (rest.subscription, rest.alerts[0].alert_id) == ("other", "a-0004")


# --- leases


async def test_a_claimed_message_is_claimable_again_after_its_lease_and_not_before(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    await accept(box, item(make_alert(1), route()))
    message = await claim_one(box, now=NOW)
    assert schedule(raw_redis, keys) == [(message.id, NOW + LEASE)]

    during = await claim(box, now=NOW + LEASE - 0.1)
    assert (during.units, during.next_due) == ([], NOW + LEASE)
    # Its sender still has it in hand: not taken again, though the lease ran out.
    assert (await claim(box, now=NOW + LEASE + 1, flying=[message.id])).units == []

    again = await claim_one(box, now=NOW + LEASE + 1)  # its sender died: sent again
    assert (again.id, again.attempts) == (message.id, 2)
    assert [a.alert_id for a in again.alerts] == ["a-0001"]


async def test_a_failed_send_comes_back_at_its_retry_time(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    await accept(box, item(make_alert(1), route()))
    message = await claim_one(box)
    await box.finish([SendOutcome(message, "failed", "503 from the receiver", retry_at=NOW + 5)], NOW + 1)

    record = delivery(raw_redis, keys, message.id)
    assert (record["state"], record["last_error"]) == ("retry", "503 from the receiver")
    assert schedule(raw_redis, keys) == [(message.id, NOW + 5)]
    failed = events(raw_redis, keys, "a-0001")[-1]
    assert (failed["event"], failed["detail"], failed["retry_at"]) == (
        "failed", "503 from the receiver", payloads.iso(NOW + 5),
    )  # fmt: skip
    assert "ms" not in failed  # not measured: left out, not null

    assert (await claim(box, now=NOW + 4.9)).units == []
    retried = await claim_one(box, now=NOW + 5)
    assert (retried.id, retried.attempts) == (message.id, 2)


# --- repeats and re-alert windows


async def test_a_redelivered_alert_id_is_a_repeat_for_the_subscription_that_took_it(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    alert = make_alert(1)
    assert await accept(box, item(alert, route())) == counts(queued=1)
    assert await accept(box, item(alert, route())) == counts(repeated=1)
    # The other subscription never took it: queued there; for "team" still a repeat.
    other = route("other", channels=("mail",))
    assert await accept(box, item(alert, route(), other)) == counts(queued=1, repeated=1)

    message = await claim_one(box)  # "team"'s message holds the alert once
    assert [a.alert_id for a in message.alerts] == ["a-0001"]
    await box.finish([SendOutcome(message, "sent")], NOW)
    assert await accept(box, item(alert, route())) == counts(repeated=1)  # sent, then redelivered
    assert event_names(raw_redis, keys, "a-0001") == ["queued", "queued", "sent"]
    assert schedule(raw_redis, keys, "hook") == []
    ((waiting, _),) = schedule(raw_redis, keys, "mail")
    assert delivery(raw_redis, keys, waiting)["subscription"] == "other"


async def test_a_repeat_of_a_case_is_deduplicated_within_its_window_and_queued_after_it(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    window = route(window=1, dedup_key="case-1")
    assert await accept(box, item(make_alert(1), window)) == counts(queued=1)
    assert raw_redis.get(keys.dedup("team", "case-1")) == b"a-0001"
    assert await accept(box, item(make_alert(2), window)) == counts(deduplicated=1)
    assert events(raw_redis, keys, "a-0002")[-1] | {"at": ""} == {
        "at": "", "event": "deduplicated", "subscription": "team", "detail": "same case as a-0001",
    }  # fmt: skip
    # The window is per subscription; and a case without a window is never deduplicated.
    assert await accept(
        box, item(make_alert(3), replace(window, subscription="other", channels=["mail"]))
    ) == counts(queued=1)
    no_window = route(window=0, dedup_key="case-2")
    assert await accept(box, item(make_alert(4), no_window), item(make_alert(5), no_window)) == counts(
        queued=2
    )

    for _ in range(50):  # the window is a key Redis expires after 1 s
        if not raw_redis.exists(keys.dedup("team", "case-1")):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the re-alert window never expired")
    assert await accept(box, item(make_alert(6), window)) == counts(queued=1)
    assert raw_redis.get(keys.dedup("team", "case-1")) == b"a-0006"  # a new window
    message = await claim_one(box)
    assert [a.alert_id for a in message.alerts] == ["a-0001", "a-0004", "a-0005", "a-0006"]


async def test_the_alert_that_opened_a_window_is_not_a_repeat_of_its_own_case(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    # A window longer than the dedup retention: the subscription forgets it took a-0001 while
    # a-0001 still holds its case's window. Arriving again, it is queued, not "same case as" itself.
    window = route(window=3600)
    assert await accept(box, item(make_alert(1), window)) == counts(queued=1)
    await box.finish([SendOutcome(await claim_one(box), "sent")], NOW)
    raw_redis.delete(keys.accepted("a-0001", "team"))  # as after the dedup retention
    assert await accept(box, item(make_alert(1), window)) == counts(queued=1)
    assert await accept(box, item(make_alert(2), window)) == counts(deduplicated=1)


# --- silences


async def test_a_silence_at_accept_records_the_alert_and_queues_nothing(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    alert = make_alert(1)
    assert await accept(box, item(alert, route(silence="s-1"))) == counts(silenced=1)
    assert raw_redis.hget(keys.silenced, "s-1") == b"1"
    assert events(raw_redis, keys, "a-0001")[-1] | {"at": ""} == {
        "at": "", "event": "silenced", "subscription": "team", "detail": "s-1",
    }  # fmt: skip
    assert schedule(raw_redis, keys) == []
    assert await accept(box, item(alert, route())) == counts(repeated=1)  # taken (and held) once


async def test_a_silence_added_after_accept_is_returned_by_claim_and_holds_the_alert_at_send(
    ctx: Context, namespace: str, box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    held, kept = make_alert(1), make_alert(2)
    alone_first = route(bucket="b-2", due=NOW - 1)
    await accept(box, item(held, route()), item(kept, route()), item(make_alert(3), alone_first))
    store = SilenceStore(ctx.redis, namespace)
    silence = await store.add({"report_id": "r-0001"}, 3600, "desk", "known shipment", NOW - 2)
    silence_3 = await store.add({"report_id": "r-0003"}, 3600, "desk", "known shipment", NOW - 1)

    got = await claim(box, limits={"team": 2})
    assert got.silences == [silence, silence_3]
    ((alone, message),) = got.units
    assert first_match(got.silences, held, "team", NOW) == silence
    assert first_match(got.silences, kept, "team", NOW) is None
    # What the stage does: the held alert is recorded as silenced, the rest is sent and recorded.
    await box.finish(
        [
            SendOutcome(replace(message, alerts=[held]), "silenced", silence.id),
            SendOutcome(alone, "silenced", silence_3.id),
            SendOutcome(replace(message, alerts=[kept]), "sent"),
        ],
        NOW,
    )

    assert raw_redis.lrange(keys.delivery_alerts(message.id), 0, -1) == [b"a-0002"]
    assert delivery(raw_redis, keys, message.id)["state"] == "sent"
    assert delivery(raw_redis, keys, alone.id)["state"] == "silenced"  # nothing left to send
    assert schedule(raw_redis, keys) == []
    assert await store.counted() == {silence.id: 1, silence_3.id: 1}
    assert event_names(raw_redis, keys, "a-0001") == ["queued", "silenced"]
    assert events(raw_redis, keys, "a-0001")[-1]["detail"] == silence.id
    assert event_names(raw_redis, keys, "a-0002") == ["queued", "sent"]
    assert [f[b"alert_id"] for _, f in raw_redis.xrange(keys.deliveries)] == [b"a-0002"]


# --- dead letters and replays


@pytest.mark.parametrize("separate_ack", [False, True], ids=["script-writes", "python-writes"])
async def test_a_replayed_dead_letter_is_queued_for_the_channel_that_gave_up_only(
    ctx: Context, namespace: str, keys: NotifyKeys, raw_redis: redis.Redis, separate_ack: bool
) -> None:
    box = Outbox(ctx.redis, namespace, 3600, 3600, separate_ack=separate_ack)
    dead_stream = StreamNames(namespace).alerts_dead
    alert = make_alert(1)
    both = route(channels=("good", "bad"))
    assert await accept(box, item(alert, both)) == counts(queued=1)
    await box.finish([SendOutcome(await claim_one(box, "good"), "sent")], NOW)
    bad = await claim_one(box, "bad")
    reason = "503 (gave up after 1 attempts)"
    await box.finish([SendOutcome(bad, "dead", reason, dead_stream=dead_stream)], NOW + 1)

    assert delivery(raw_redis, keys, bad.id)["state"] == "dead"
    assert schedule(raw_redis, keys, "bad") == []
    assert members(raw_redis, keys.gave_up("a-0001", "team")) == {"bad"}
    assert 0 < raw_redis.ttl(keys.gave_up("a-0001", "team")) <= 3600
    ((_, fields),) = raw_redis.xrange(dead_stream)
    expected = Outbox.dead_letter(alert, bad, reason, payloads.iso(NOW + 1))
    assert {k.decode(): v.decode() for k, v in fields.items()} == expected
    assert (expected["dead.channel"], expected["dead.deliveries"]) == ("bad", "1")

    # ``dlq replay notify`` puts the alert back on the stream: accepted again for "bad" only.
    assert await accept(box, item(alert, both)) == counts(queued=1)
    assert schedule(raw_redis, keys, "good") == []
    replayed = await claim_one(box, "bad")
    assert (replayed.id != bad.id, replayed.attempts) == (True, 1)
    await box.finish([SendOutcome(replayed, "sent")], NOW + 2)
    assert raw_redis.exists(keys.gave_up("a-0001", "team")) == 0
    assert await accept(box, item(alert, both)) == counts(repeated=1)  # replayed twice: sent once
    assert event_names(raw_redis, keys, "a-0001") == ["queued", "queued", "sent", "dead", "queued", "sent"]


async def test_a_replayed_dead_letter_is_queued_while_another_alert_of_its_case_holds_the_window(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis, namespace: str
) -> None:
    window = route(window=3600)
    assert await accept(box, item(make_alert(1), window)) == counts(queued=1)
    message = await claim_one(box)
    await box.finish(
        [SendOutcome(message, "dead", "gave up", dead_stream=StreamNames(namespace).alerts_dead)], NOW
    )
    # a-0001's window ended and a-0002, the same case, opened the next one.
    raw_redis.set(keys.dedup("team", "case-1"), "a-0002", ex=3600)

    assert await accept(box, item(make_alert(1), window)) == counts(queued=1)  # the replay
    assert [a.alert_id for a in (await claim_one(box)).alerts] == ["a-0001"]


@pytest.mark.parametrize("separate_ack", [False, True], ids=["in-the-script", "after-it"])
async def test_accept_acks_the_entries_of_its_batch(
    ctx: Context, namespace: str, raw_redis: redis.Redis, separate_ack: bool
) -> None:
    box = Outbox(ctx.redis, namespace, 3600, 3600, separate_ack=separate_ack)
    stream = StreamNames(namespace).alerts
    raw_redis.xgroup_create(stream, "notify", id="0", mkstream=True)
    alerts = [make_alert(1), make_alert(2), make_alert(3)]
    for a in alerts:
        raw_redis.xadd(stream, {"alert": a.model_dump_json()})
    ((_, entries),) = raw_redis.xreadgroup("notify", "c-1", {stream: ">"})
    assert raw_redis.xpending(stream, "notify")["pending"] == 3

    acked = [e.decode() for e, _ in entries[:2]]
    got = await box.accept([item(a, route()) for a in alerts[:2]], acked, stream, "notify", NOW)
    assert got == counts(queued=2)
    pending = raw_redis.xpending_range(stream, "notify", "-", "+", 10)
    assert [p["message_id"] for p in pending] == [entries[2][0]]


async def test_messages_for_a_channel_no_longer_configured_are_given_up_then_replayable(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis, namespace: str
) -> None:
    # "old" is removed from the configuration while two messages wait out their group wait; one
    # alert was already sent through "kept". What NotifyStage._give_up_unknown_channels does with
    # the outbox: find the channel, claim all of its messages whenever due, record them dead with
    # the subscription's channels now ("kept", "new") as the ones to take them on a replay.
    dead_stream = StreamNames(namespace).alerts_dead
    wait = NOW + 3600
    assert await accept(
        box,
        item(make_alert(1), route(channels=("kept", "old"), bucket="1", due=wait)),
        item(make_alert(2), route(channels=("old",), bucket="2", due=wait)),
    ) == counts(queued=2)
    await box.finish([SendOutcome(await claim_one(box, "kept", now=wait), "sent")], wait)
    assert await box.queued_channels() == {"old": 2}
    assert (await box.outstanding(["old", "kept"]), await box.outstanding(["kept"])) == (2, 0)

    reason = "channel old is no longer configured (removed, or its URL changed)"
    units = (await box.claim("old", 1e18, 60, units=100, limits={}, flying=[])).units
    assert sorted(len(u) for u in units) == [1, 1]
    await box.finish(
        [
            SendOutcome(m, "dead", reason, dead_stream=dead_stream, instead=["kept", "new"])
            for u in units
            for m in u
        ],
        NOW,
    )

    assert await box.queued_channels() == {}
    assert (await box.claim("old", 1e18, 60, units=100, limits={}, flying=[])).units == []
    assert sorted(json.loads(f[b"alert"])["alert_id"] for _, f in raw_redis.xrange(dead_stream)) == [
        "a-0001", "a-0002",
    ]  # fmt: skip
    assert {f[b"dead.reason"].decode() for _, f in raw_redis.xrange(dead_stream)} == {reason}
    assert members(raw_redis, keys.gave_up("a-0001", "team")) == {"old", "new"}  # "kept" had it
    assert members(raw_redis, keys.gave_up("a-0002", "team")) == {"old", "kept", "new"}

    # The replay, with the subscription's channels as configured now.
    now_configured = ("kept", "new")
    assert await accept(
        box,
        item(make_alert(1), route(channels=now_configured, bucket="1")),
        item(make_alert(2), route(channels=now_configured, bucket="2")),
    ) == counts(queued=2)
    assert await box.queued_channels() == {"new": 2, "kept": 1}
    assert members(raw_redis, keys.gave_up("a-0001", "team")) == {"old"}
    assert await accept(box, item(make_alert(1), route(channels=now_configured))) == counts(repeated=1)


async def test_a_message_whose_alerts_are_gone_is_claimed_empty_and_can_be_given_up(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis, namespace: str
) -> None:
    await accept(
        box,
        item(make_alert(1), route("one")),
        item(make_alert(2), route("two")),
        item(make_alert(3), route("three")),
    )
    by_sub = {m: delivery(raw_redis, keys, m)["subscription"] for m, _ in schedule(raw_redis, keys)}
    ids = {sub: m for m, sub in by_sub.items()}
    raw_redis.delete(keys.delivery_alerts(ids["one"]))  # its list of alert ids (cjson: {} not [])
    raw_redis.delete(keys.alert("a-0002"))  # its alert's JSON (past the retention)
    raw_redis.delete(keys.delivery(ids["three"]))  # its record: dropped from the schedule

    got = await claim(box)
    assert sorted((m.subscription, m.alerts) for unit in got.units for m in unit) == [
        ("one", []),
        ("two", []),
    ]
    assert ids["three"] not in [m for m, _ in schedule(raw_redis, keys)]
    dead_stream = StreamNames(namespace).alerts_dead
    gone = "the alerts of this message are gone (past the history retention)"
    await box.finish(
        [SendOutcome(m, "dead", gone, dead_stream=dead_stream) for u in got.units for m in u], NOW
    )
    assert [delivery(raw_redis, keys, ids[sub])["state"] for sub in ("one", "two")] == ["dead", "dead"]
    assert schedule(raw_redis, keys) == []
    assert raw_redis.xlen(keys.deliveries) == 0  # no alert: nothing to record per alert
    assert raw_redis.exists(dead_stream) == 0


# --- cjson's empty and null cases


async def test_an_empty_batch_and_an_empty_schedule(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis, namespace: str
) -> None:
    assert await accept(box) == counts()
    assert list(raw_redis.scan_iter(match=f"{namespace}:*")) == []
    assert await claim(box) == Claim([], [], None)
    # The script's own reply: an empty list of sends comes back as an empty object.
    args = payloads.claim_args(
        keys.templates, now=NOW, lease=LEASE, max_units=1, limits={}, flying=[], scan=64
    )
    reply = raw_redis.eval(script("claim"), 1, keys.due("hook"), *args)
    assert reply == [b"{}", [], b""]
    assert payloads.read_claim(reply) == payloads.ClaimReply([], [], None, {})


async def test_an_alert_no_subscription_wants_is_stored_and_counted_once(
    box: Outbox, keys: NotifyKeys, raw_redis: redis.Redis
) -> None:
    assert await accept(box, item(make_alert(1))) == counts(routed_nowhere=1)
    assert await accept(box, item(make_alert(1))) == counts()  # not new: not counted again
    assert event_names(raw_redis, keys, "a-0001") == ["routed nowhere"]
    assert raw_redis.exists(keys.alert("a-0001")) == 1


def test_optional_fields_without_a_value_are_left_out_never_null() -> None:
    keys = NotifyKeys("tw")
    accept_doc = json.loads(
        payloads.accept_args(
            keys.templates,
            [payloads.AcceptItem("a-1", b"{}", [route()]), payloads.AcceptItem("a-2", b"{}", [])],
            ack=[], stream="s", group="g", now=NOW, retention=1, dedup_retention=1,
            new_id=lambda: "d-1",
        )[0]
    )  # fmt: skip
    assert accept_doc["items"] == [
        {"alert_id": "a-1", "argv": 2, "routes": [{
            "subscription": "team", "window": 0, "dedup_key": "case-1", "bucket": "b-1", "due": NOW,
            "channels": [{"channel": "hook", "new_delivery": "d-1"}],
        }]},
        {"alert_id": "a-2", "argv": 3, "routes": []},
    ]  # fmt: skip
    sent = payloads.FinishRecord(
        "d-1", "hook", "team", 1, "sent", None, [payloads.FinishAlert("a-1", "r", "p")],
        retry_at=NOW, dead_stream="dead", instead=["x"],
    )  # fmt: skip
    (finish,) = payloads.finish_args(keys.templates, [sent], at="t", retention=1)
    assert "null" not in finish
    record = json.loads(finish)["records"][0]
    # Only a failed record is retried, only a dead one dead-lettered.
    assert set(record) == {"id", "channel", "subscription", "attempt", "outcome", "error", "alerts"}
    assert record["error"] == ""
    assert "ms" not in json.loads(finish)
    dead = replace(sent, outcome="dead", alerts=[payloads.FinishAlert("a-1", "r", "p", {"alert": "{}"})])
    doc = json.loads(payloads.finish_args(keys.templates, [dead], at="t", retention=1, ms=3.0)[0])
    assert doc["ms"] == 3.0
    (record,) = doc["records"]
    assert (record["dead_stream"], record["instead"], "retry_at" in record) == ("dead", ["x"], False)
    assert record["alerts"] == [
        {"alert_id": "a-1", "rule_id": "r", "report_id": "p", "dead_letter": ["alert", "{}"]}
    ]


# --- key names


def _layout_pattern(keys: NotifyKeys) -> re.Pattern[str]:
    names = [re.escape(t).replace("%s", "[^:]+") for t in keys.templates.values()]
    return re.compile("|".join(f"(?:{n})" for n in sorted(names, key=len, reverse=True)))


@pytest.mark.parametrize("tagged", [False, True], ids=["plain", "hash-tagged"])
async def test_the_scripts_write_only_keys_of_the_layout_on_one_slot(
    ctx: Context, namespace: str, raw_redis: redis.Redis, tagged: bool
) -> None:
    names = StreamNames(namespace, tagged=tagged)
    box = Outbox(ctx.redis, names.notify_namespace, 3600, 3600)
    keys = NotifyKeys(names.notify_namespace)
    assert keys.deliveries == names.deliveries  # the stream ``tradewatch status`` reads
    await SilenceStore(ctx.redis, names.notify_namespace).add({"rule_id": "x"}, 60, "a", "b", NOW)
    await accept(
        box,
        item(make_alert(1), route(channels=("hook", "mail"), window=60), route("other", silence="s-1")),
        item(make_alert(2), route(bucket="b-2")),
        item(make_alert(3), route(channels=("later",), due=NOW + 3600)),  # still open
    )
    message = await claim_one(box, "mail")
    await box.finish([SendOutcome(message, "dead", "no", dead_stream=names.alerts_dead)], NOW)
    got = await claim(box, "hook")
    await box.finish([SendOutcome(m, "failed", "503", retry_at=NOW + 60) for u in got.units for m in u], NOW)

    written = {k.decode() for k in raw_redis.scan_iter(match=f"{namespace}:*")} - {names.alerts_dead}
    layout = _layout_pattern(keys)
    assert [k for k in written if not layout.fullmatch(k)] == []
    assert {name for name in LAYOUT if any(re.fullmatch(_one(keys, name), k) for k in written)} == set(LAYOUT)
    if tagged:
        assert len({key_slot(k.encode()) for k in written}) == 1


def _one(keys: NotifyKeys, name: str) -> str:
    return re.escape(keys.templates[name]).replace("%s", "[^:]+")


def test_a_percent_sign_in_the_namespace_is_kept_as_it_is() -> None:
    keys = NotifyKeys("t%sw")
    assert keys.alert("a-1") == "t%sw:notify:alert:a-1"
    assert keys.recent == "t%sw:notify:recent"
    assert keys.deliveries == "t%sw:deliveries"
