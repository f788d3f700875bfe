"""The contracts between tradewatch's stages: models only, no logic beyond validation."""

from schemas.alert import Alert, MatchedItem, Severity
from schemas.report import Condition, ImportReport, ReportItem

__all__ = ["Alert", "Condition", "ImportReport", "MatchedItem", "ReportItem", "Severity"]
