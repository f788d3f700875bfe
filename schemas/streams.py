"""Stream, group and key names: the wire layout every stage and every outside producer shares.

All names hang off one namespace (default ``tradewatch``) so that several pipelines, or the
test suite's parallel runs, can share one server without touching each other.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

REPORT_FIELD = "report"
"""The stream entry field that holds a report as JSON: ``XADD tradewatch:reports * report '<json>'``."""

ALERT_FIELD = "alert"
"""The stream entry field that holds an alert as JSON."""


def partition_of(report_id: str, partitions: int) -> int:
    """The partition of a report (and of its alerts): a stable hash, the same in every process."""
    if partitions <= 1:
        return 0
    return zlib.crc32(report_id.encode("utf-8")) % partitions


@dataclass(frozen=True, slots=True)
class StreamNames:
    """Stream and key names. ``partitions=1`` and ``tagged=False`` (the default) are the plain
    single-server names (``<ns>:reports``, ``<ns>:alerts``).

    Tagged (several partitions, or a Redis Cluster), partition ``k`` of each stream carries the hash
    tag ``{pk}``: ``<ns>:reports:{p0}``, ``<ns>:alerts:{p0}``, ``<ns>:reports:dead:{p0}``,
    ``<ns>:alerts:dead:{p0}``. A report and its alerts share a partition (by report id), so the
    rules stage's one script (read a report partition, write its alerts, ack) stays on one slot;
    the notifier's state lives under one tag of its own (``<ns>:{notify}:notify:...``).
    """

    namespace: str = "tradewatch"
    partitions: int = 1
    tagged: bool = False

    @property
    def is_partitioned(self) -> bool:
        return self.tagged or self.partitions > 1

    def tag(self, partition: int) -> str:
        return f"{{p{partition}}}"

    def _stream(self, base: str, partition: int) -> str:
        if not self.is_partitioned:
            return f"{self.namespace}:{base}"
        return f"{self.namespace}:{base}:{self.tag(partition)}"

    def partition(self, report_id: str) -> int:
        return partition_of(report_id, self.partitions)

    def report_stream(self, partition: int) -> str:
        return self._stream("reports", partition)

    def alert_stream(self, partition: int) -> str:
        return self._stream("alerts", partition)

    def reports_dead_stream(self, partition: int) -> str:
        return self._stream("reports:dead", partition)

    def alerts_dead_stream(self, partition: int) -> str:
        return self._stream("alerts:dead", partition)

    def reports_for(self, report_id: str) -> str:
        """The report partition a report is published to."""
        return self.report_stream(self.partition(report_id))

    def alerts_for(self, report_id: str) -> str:
        """The alert partition a report's alerts go to (the same partition number as the report)."""
        return self.alert_stream(self.partition(report_id))

    @property
    def all_reports(self) -> list[str]:
        return [self.report_stream(p) for p in range(self.partitions)]

    @property
    def all_alerts(self) -> list[str]:
        return [self.alert_stream(p) for p in range(self.partitions)]

    @property
    def all_reports_dead(self) -> list[str]:
        return [self.reports_dead_stream(p) for p in range(self.partitions)]

    @property
    def all_alerts_dead(self) -> list[str]:
        return [self.alerts_dead_stream(p) for p in range(self.partitions)]

    @property
    def notify_namespace(self) -> str:
        """The prefix of the notifier's state: one hash tag when partitioned, so its scripts stay on one slot."""
        return f"{self.namespace}:{{notify}}" if self.is_partitioned else self.namespace

    @property
    def deliveries(self) -> str:
        """The notifier's record of every send (under its state's tag)."""
        return f"{self.notify_namespace}:deliveries"

    @property
    def reports(self) -> str:
        """The report stream (partition 0 when partitioned)."""
        return self.report_stream(0)

    @property
    def alerts(self) -> str:
        """The alert stream (partition 0 when partitioned)."""
        return self.alert_stream(0)

    @property
    def reports_rejected(self) -> str:
        """Input that never became a report: malformed rows, requests, files."""
        return f"{self.namespace}:reports:rejected"

    @property
    def reports_dead(self) -> str:
        """Reports the rules stage gave up on (poison messages past the delivery limit)."""
        return self.reports_dead_stream(0)

    @property
    def alerts_dead(self) -> str:
        """Alerts the notify stage gave up on, and deliveries that exhausted their retries."""
        return self.alerts_dead_stream(0)

    def key(self, *parts: str) -> str:
        """A state key under the namespace, e.g. ``key("seen", "report", rid)``."""
        return ":".join((self.namespace, *parts))


RULES_GROUP = "rules"
NOTIFY_GROUP = "notify"
RECORDS_GROUP = "records"
ARCHIVE_GROUP = "archive"
