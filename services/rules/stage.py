"""The rules stage: reports in, explained alerts out, in one transaction per batch.

For each batch: decode every report (a bad one is dead-lettered, the rest go on), evaluate the
rule set, then XADD every alert and XACK every entry in one MULTI/EXEC. A crash before EXEC
leaves the batch pending and publishes nothing; after it, everything is stored and acked.
A redelivered report yields the same alert ids, so even a replay never notifies twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.streams import RULES_GROUP
from services.logging import get_logger
from services.rules.engine import RuleSet, evaluate
from services.rules.loader import load_from_settings
from services.runtime import Consumes, Context
from services.sanctions.store import ScreeningCache
from services.wire import BadMessage, Entry, alert_fields, dead_letter_fields, decode_report


class RulesStage:
    name = "rules"

    def __init__(self, ctx: Context, ruleset: RuleSet | None = None) -> None:
        self.ctx = ctx
        names = ctx.settings.streams
        self.consumes = Consumes(names.reports, RULES_GROUP, names.reports_dead)
        self.alerts_stream = names.alerts
        self.ruleset = ruleset
        self.screening = ScreeningCache(ctx.redis, ctx.settings)
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
        await self.screening.current()

    async def stop(self) -> None:
        return None

    async def busy(self) -> bool:
        return False

    async def handle(self, batch: Sequence[Entry]) -> None:
        assert self.ruleset is not None
        settings = self.ctx.settings
        now = datetime.now(UTC)
        screening = await self.screening.current()  # rebuilt only when a list version changed
        async with self.ctx.redis.pipeline(transaction=True) as pipe:
            for entry in batch:
                started = time.perf_counter()
                try:
                    report = decode_report(entry, settings.max_report_bytes)
                    alerts = evaluate(report, self.ruleset, now, screening)
                except BadMessage as error:
                    self._bury(pipe, entry, str(error))
                    continue
                except Exception as error:  # a defect must not block the rest of the batch
                    self._bury(pipe, entry, f"rule evaluation failed: {type(error).__name__}: {error}")
                    continue
                for alert in alerts:
                    pipe.xadd(self.alerts_stream, alert_fields(alert))  # type: ignore[arg-type]
                self.log.info(
                    "report evaluated",
                    entry_id=entry.id,
                    report_id=report.report_id,
                    alerts=[
                        {"alert_id": a.alert_id, "rule_id": a.rule_id, "severity": a.severity.value}
                        for a in alerts
                    ],
                    ms=round((time.perf_counter() - started) * 1000, 3),
                )
            pipe.xack(self.consumes.stream, self.consumes.group, *[e.id for e in batch])
            await pipe.execute()

    def _bury(self, pipe: object, entry: Entry, reason: str) -> None:
        c = self.consumes
        pipe.xadd(c.dead_stream, dead_letter_fields(self.name, entry, c.stream, reason))  # type: ignore[attr-defined]
        self.log.warning("report rejected", entry_id=entry.id, reason=reason, dead_stream=c.dead_stream)
