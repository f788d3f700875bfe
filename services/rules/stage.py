"""The rules stage: reports in, explained alerts out, in one transaction per batch.

For each batch: decode every report (a bad one is dead-lettered, the rest go on), evaluate the
rule set, apply the state of rules over time (frequency, new_term) in Redis, then XADD every
alert and XACK every entry in one atomic script that skips the entries no longer pending for this
consumer (see services/owned.py: a worker that stalled past ``reclaim_idle`` must not publish a
batch another consumer reclaimed). A crash before it leaves the batch pending and publishes
nothing; after it, everything is stored and acked. State decisions are stored per report id
(``services/rules/state.py``), so a report redelivered after a crash between the two steps gets
its decision back rather than counting twice. A redelivered report yields the same alert ids, so
even a replay never notifies twice.

The rule set is replaced whole by the reloader when its files change; each batch is evaluated
by the one rule set that was live when the batch began.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.alert import Alert
from schemas.report import ImportReport
from schemas.streams import RULES_GROUP
from services import metrics
from services.logging import get_logger
from services.owned import OwnedBatch
from services.rules import live, state
from services.rules.engine import RuleSet, Verdict, examine
from services.rules.loader import load_from_settings
from services.rules.reload import Reloader
from services.rules.temporal import Pending, is_backfill, settle
from services.runtime import Consumes, Context, deadletter
from services.runtime.deadletter import DeadLetter
from services.sanctions.store import ScreeningCache
from services.wire import BadMessage, Entry, alert_fields, decode_report, event_time, received_at

GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic collector's thresholds in a rules worker (CPython's default: 700, 10, 10)."""


def _quiet_collector() -> None:
    """Collect cycles less often, and never walk again what was loaded before the stage started.

    Evaluating a report allocates many small objects and the bounded memos keep some of them, so
    with the default thresholds the collector ran every few reports and its full passes walked
    every module, model and memo entry: about a fifth of a burst worker's CPU. Little of what a
    report makes is cyclic (reference counting frees it), so rarer collections cost little memory.
    """
    if gc.get_threshold() != GC_THRESHOLDS:  # once per process, however many stages start
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


class RulesStage:
    name = "rules"

    def __init__(self, ctx: Context, ruleset: RuleSet | None = None) -> None:
        self.ctx = ctx
        names = ctx.settings.streams
        self.alerts_stream = names.alerts
        # One group per report partition; a partition's alerts go to the alert partition of the
        # same number (same hash tag), so the commit script stays on one slot.
        self.partitions = [
            Consumes(names.report_stream(p), RULES_GROUP, names.reports_dead_stream(p))
            for p in range(names.partitions)
        ]
        self._alert_streams = {names.report_stream(p): names.alert_stream(p) for p in range(names.partitions)}
        self.ruleset = ruleset
        self.screening = ScreeningCache(ctx.redis, ctx.settings)
        self.log = get_logger(stage=self.name)
        self.reloader: Reloader | None = None
        # The counter of each rule and severity, looked up once (``labels`` takes a lock and
        # builds a key on every call, and a batch counts hundreds of alerts).
        self._alert_counter = functools.lru_cache(maxsize=4096)(metrics.ALERTS.labels)

    async def start(self) -> None:
        settings = self.ctx.settings
        _quiet_collector()
        if self.ruleset is None:
            # Stamp the files first: a change made during the load is seen at the next check.
            self.reloader = Reloader(settings, self.ctx.redis, self._replace)
            # A bad file raises here: the worker refuses to start.
            self.ruleset = load_from_settings(settings)
        self.log.info(
            "rule set loaded",
            ruleset_version=self.ruleset.version,
            rules=len(self.ruleset.rules),
            files=list(self.ruleset.sources),
        )
        await live.publish(self.ctx.redis, settings.streams, self.ruleset)
        await self.screening.current()
        if self.reloader is not None:
            self.reloader.start()

    def _replace(self, ruleset: RuleSet) -> None:
        # One assignment: a batch already running keeps the set it began with.
        self.ruleset = ruleset

    async def stop(self) -> None:
        if self.reloader is not None:
            await self.reloader.stop()

    async def busy(self) -> bool:
        return False

    async def handle(self, batch: Sequence[Entry], consumes: Consumes) -> None:
        ruleset = self.ruleset  # the set live when the batch began, whatever a reload does
        assert ruleset is not None
        settings = self.ctx.settings
        now = datetime.now(UTC)
        screening = await self.screening.current()  # rebuilt only when a list version changed
        c = consumes
        alerts_stream = self._alert_streams[c.stream]
        commit = OwnedBatch(c.stream, c.group, settings.consumer)
        done: list[tuple[Entry, ImportReport, list[Verdict], float]] = []
        unrecognised: dict[str, int] = {}  # entry id -> items the catalog could not classify
        buried: list[DeadLetter] = []
        for entry in batch:
            started = time.perf_counter()
            commit.entry(entry.id)
            try:
                report = decode_report(entry, settings.max_report_bytes)
                facts, verdicts = examine(report, ruleset, now, screening)
                unrecognised[entry.id] = len(facts.unrecognised)
            except BadMessage as error:
                buried.append(DeadLetter(entry, str(error)))
                continue
            except Exception as error:  # a defect must not block the rest of the batch
                buried.append(DeadLetter(entry, f"rule evaluation failed: {type(error).__name__}: {error}"))
                continue
            done.append((entry, report, verdicts, time.perf_counter() - started))
        # Rules over time count each report at its own event time (see services/rules/temporal.py).
        times = {
            entry.id: (event_time(report, received_at(entry.id)), received_at(entry.id))
            for entry, report, _, _ in done
        }
        pending: list[Pending] = []
        at: list[datetime] = []
        arrived: list[datetime] = []
        for entry, _, vs, _ in done:
            for v in vs:
                if v.pending is not None:
                    pending.append(v.pending)
                    at.append(times[entry.id][0])
                    arrived.append(times[entry.id][1])
        # Stored before the alerts are published; a redelivery replays the stored decisions.
        decided = iter(
            await state.decide(
                self.ctx.redis, settings.streams, pending, at, settings.backfill_horizon, arrived
            )
        )
        published: list[tuple[Entry, str, list[Alert], float, list[dict[str, str]]]] = []
        for entry, report, verdicts, seconds in done:
            decisions = [next(decided) if v.pending is not None else None for v in verdicts]
            backfill = is_backfill(*times[entry.id], settings.backfill_horizon)
            alerts: list[Alert] = []
            try:
                for v, d in zip(verdicts, decisions, strict=True):
                    # The alert of a rule over time is built here, and only when its state fires it.
                    alert = (
                        settle(v.pending, d, backfill) if v.pending is not None and d is not None else v.alert
                    )
                    if alert is not None:
                        alerts.append(alert)
            except Exception as error:  # a defect must not block the rest of the batch
                buried.append(DeadLetter(entry, f"rule evaluation failed: {type(error).__name__}: {error}"))
                continue
            for alert in alerts:
                commit.add(entry.id, alerts_stream, alert_fields(alert))
            # Rules an exception held back (a rule's own, or a reviewed "not this party"): logged.
            held = [{"rule_id": v.rule_id, "by": v.suppressed_by} for v in verdicts if v.suppressed_by]
            published.append((entry, report.report_id, alerts, seconds, held))
        for letter in buried:
            commit.add(letter.entry.id, c.dead_stream, deadletter.fields(self.name, c, letter))
        owned = await commit.commit(self.ctx.redis)
        # Logged after the commit, and only for what was ours: a line means "stored".
        for entry, report_id, alerts, seconds, held in published:
            if entry.id not in owned:
                continue
            for a in alerts:
                self._alert_counter(a.rule_id, a.severity.value).inc()
            self.log.info(
                "report evaluated",
                entry_id=entry.id,
                report_id=report_id,
                ruleset_version=ruleset.version,
                alerts=[
                    {"alert_id": a.alert_id, "rule_id": a.rule_id, "severity": a.severity.value}
                    for a in alerts
                ],
                ms=round(seconds * 1000, 3),
                **({"held_back": held} if held else {}),
            )
        deadletter.recorded(self.name, c, [d for d in buried if d.entry.id in owned])
        if strange := sum(n for entry_id, n in unrecognised.items() if entry_id in owned):
            # Counted per process for Prometheus and on the server for `tradewatch status`.
            metrics.UNRECOGNISED_ITEMS.inc(strange)
            await self.ctx.redis.incrby(settings.streams.key("rules", "unrecognised-items"), strange)
        if lost := [e.id for e in batch if e.id not in owned]:
            metrics.NOT_OURS.labels(self.name).inc(len(lost))
            self.log.warning(
                "entries reclaimed by another consumer: their alerts were not published here",
                entry_ids=lost[:20],
                count=len(lost),
            )
