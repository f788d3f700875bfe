"""Stream, group and key names: the wire layout every stage and every outside producer shares.

All names hang off one namespace (default ``tradewatch``) so that several pipelines, or the
test suite's parallel runs, can share one server without touching each other.
"""

from __future__ import annotations

from dataclasses import dataclass

REPORT_FIELD = "report"
"""The stream entry field that holds a report as JSON: ``XADD tradewatch:reports * report '<json>'``."""

ALERT_FIELD = "alert"
"""The stream entry field that holds an alert as JSON."""


@dataclass(frozen=True, slots=True)
class StreamNames:
    namespace: str = "tradewatch"

    @property
    def reports(self) -> str:
        return f"{self.namespace}:reports"

    @property
    def alerts(self) -> str:
        return f"{self.namespace}:alerts"

    @property
    def reports_rejected(self) -> str:
        """Input that never became a report: malformed rows, requests, files."""
        return f"{self.namespace}:reports:rejected"

    @property
    def reports_dead(self) -> str:
        """Reports the rules stage gave up on (poison messages past the delivery limit)."""
        return f"{self.namespace}:reports:dead"

    @property
    def alerts_dead(self) -> str:
        """Alerts the notify stage gave up on, and deliveries that exhausted their retries."""
        return f"{self.namespace}:alerts:dead"

    def key(self, *parts: str) -> str:
        """A state key under the namespace, e.g. ``key("seen", "report", rid)``."""
        return ":".join((self.namespace, *parts))


RULES_GROUP = "rules"
NOTIFY_GROUP = "notify"
