"""The rules stage: reports in, explained alerts out, in one transaction per batch.

For each batch: decode every report (a bad one is dead-lettered, the rest go on), evaluate the
rule set, then XADD every alert and XACK every entry in one atomic script that skips the
entries no longer pending for this consumer (see services/owned.py: a worker that stalled
past ``reclaim_idle`` must not publish a batch another consumer reclaimed). A crash before it
leaves the batch pending and publishes nothing; after it, everything is stored and acked.
A redelivered report yields the same alert ids, so even a replay never notifies twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.alert import Alert
from schemas.streams import RULES_GROUP
from services import metrics
from services.logging import get_logger
from services.owned import OwnedBatch
from services.rules.engine import RuleSet, evaluate
from services.rules.loader import load_from_settings
from services.runtime import Consumes, Context
from services.wire import BadMessage, Entry, alert_fields, dead_letter_fields, decode_report


class RulesStage:
    name = "rules"

    def __init__(self, ctx: Context, ruleset: RuleSet | None = None) -> None:
        self.ctx = ctx
        names = ctx.settings.streams
        self.consumes = Consumes(names.reports, RULES_GROUP, names.reports_dead)
        self.alerts_stream = names.alerts
        self.ruleset = ruleset
        self.log = get_logger(stage=self.name)

    async def start(self) -> None:
        if self.ruleset is None:
            self.ruleset = load_from_settings(self.ctx.settings)
        self.log.info(
            "rule set loaded",
            ruleset_version=self.ruleset.version,
            rules=len(self.ruleset.rules),
            files=list(self.ruleset.sources),
        )
        await self.ctx.redis.set(self.ctx.settings.streams.key("ruleset", "version"), self.ruleset.version)

    async def stop(self) -> None:
        return None

    async def busy(self) -> bool:
        return False

    async def handle(self, batch: Sequence[Entry]) -> None:
        assert self.ruleset is not None
        settings = self.ctx.settings
        now = datetime.now(UTC)
        c = self.consumes
        commit = OwnedBatch(c.stream, c.group, settings.consumer)
        done: list[tuple[Entry, str | None, list[Alert], float]] = []
        buried: list[tuple[Entry, str]] = []
        for entry in batch:
            started = time.perf_counter()
            commit.entry(entry.id)
            try:
                report = decode_report(entry, settings.max_report_bytes)
                alerts = evaluate(report, self.ruleset, now)
            except BadMessage as error:
                buried.append((entry, str(error)))
                continue
            except Exception as error:  # a defect must not block the rest of the batch
                buried.append((entry, f"rule evaluation failed: {type(error).__name__}: {error}"))
                continue
            for alert in alerts:
                commit.add(entry.id, self.alerts_stream, alert_fields(alert))
            done.append((entry, report.report_id, alerts, (time.perf_counter() - started) * 1000))
        for entry, reason in buried:
            commit.add(entry.id, c.dead_stream, dead_letter_fields(self.name, entry, c.stream, reason))
        owned = await commit.commit(self.ctx.redis)
        # Logged after the commit, and only for what was ours: a line means "stored".
        for entry, report_id, alerts, ms in done:
            if entry.id not in owned:
                continue
            for a in alerts:
                metrics.ALERTS.labels(a.rule_id, a.severity.value).inc()
            self.log.info(
                "report evaluated",
                entry_id=entry.id,
                report_id=report_id,
                alerts=[
                    {"alert_id": a.alert_id, "rule_id": a.rule_id, "severity": a.severity.value}
                    for a in alerts
                ],
                ms=round(ms, 3),
            )
        for entry, reason in buried:
            if entry.id in owned:
                metrics.DEAD_LETTERS.labels(self.name).inc()
                self.log.warning(
                    "report rejected", entry_id=entry.id, reason=reason, dead_stream=c.dead_stream
                )
        if lost := [e.id for e in batch if e.id not in owned]:
            metrics.NOT_OURS.labels(self.name).inc(len(lost))
            self.log.warning(
                "entries reclaimed by another consumer: their alerts were not published here",
                entry_ids=lost[:20],
                count=len(lost),
            )
