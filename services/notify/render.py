"""Messages people can act on: sandboxed Jinja2 templates for title and body, per format.

One message may carry several alerts (one report that tripped several rules, a group, a
digest): the templates get them all, worst first, and the reports they came from. Templates
run in Jinja's immutable sandbox, so a template file cannot reach Python internals. A
subscription may replace any of the defaults (``templates: {html: mail.html.j2}``); every
template is compiled and tried on a sample alert when it is loaded, so a broken one stops the
worker at start, not at three in the morning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from schemas.alert import Alert, MatchedItem, Severity
from services.cases import cases_of, marked
from services.money import format_amount

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("text", "markdown", "html")
NAMES = ("title", *FORMATS)


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    format: str = "text"
    """text, markdown, html or json: how the body is written, so the channel is told."""
    severity: str = "info"
    """The worst severity in the message (chat channels colour a message by it)."""


class TemplateProblem(ValueError):
    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


def sample_alerts() -> list[Alert]:
    """A report's case for trial renders (every template is tried on it at load): two rules on one
    item with its quantity and prices, and a finding about the report as a whole."""
    common: dict[str, Any] = {
        "report_id": "sample-report", "source": "sample", "crossing": "Hunchun-Rason",
        "origin_country": "CN", "destination_country": "KP", "created_at": datetime(2026, 3, 6, tzinfo=UTC),
        "reported_at": datetime(2026, 3, 6, 9, 5, tzinfo=UTC), "importer": "Rason trading company",
        "exporter": "Hunchun machinery dealer", "url": "https://example.org/report", "dedup_key": "sample",
        "group_key": "sample", "legal_basis": "UNSCR 2397 (2017) OP7", "rule_version": "v1",
        "evidence": ["destination country KP"], "unrecognised": ["gearbox"],
    }  # fmt: skip
    item = MatchedItem(
        index=0, description="CNC cutting machines", hs_code="845611", categories=["machine-tools"],
        evidence=["HS 8456.11 (declared) falls in chapters 84 to 85", "HS 845611 declared"],
        classification=["HS 845611 declared"], quantity=4, unit="unit", unit_price=250000,
        currency="CNY", value=1000000, value_base=138000, base_currency="USD",
        quote="Four second-hand CNC cutting machines went to a Rason shipyard.", marks=[(5, 16), (17, 37)],
    )  # fmt: skip
    return [
        Alert(
            alert_id="a-sample-1",
            rule_id="shipyard-equipment",
            severity=Severity.CRITICAL,
            title="Shipyard equipment to the DPRK",
            summary="CNC cutting machines",
            matched_items=[item],
            tags=["unscr-2397"],
            **common,
        ),
        Alert(
            alert_id="a-sample-2",
            rule_id="unscr2397-machinery",
            severity=Severity.HIGH,
            title="Machinery (HS 84-85) to the DPRK",
            summary="CNC cutting machines",
            matched_items=[item],
            tags=["unscr-2397"],
            **common,
        ),
        Alert(
            alert_id="a-sample-3",
            rule_id="technical-assistance",
            severity=Severity.HIGH,
            title="Technicians sent to install machinery",
            summary="technicians",
            tags=["unscr-2321"],
            **{**common, "evidence": [*common["evidence"], '"technicians" in the report text']},
        ),
    ]


SEVERITY_STYLE = {
    "critical": "background: #b00020; color: #fff;",
    "high": "background: #e65100; color: #fff;",
    "medium": "background: #fbc02d; color: #111;",
    "low": "background: #ddd; color: #111;",
    "info": "background: #eee; color: #111;",
}
"""The badge of each severity in HTML (colours that print legibly in grey too)."""


def context_for(alerts: Sequence[Alert]) -> dict[str, Any]:
    """What every template gets: the cases (one per report, worst first) and, for templates
    written against single alerts, the alerts themselves."""
    ordered = sorted(alerts, key=lambda a: (-a.severity.rank, a.rule_id, a.report_id))
    return {
        "severity_style": SEVERITY_STYLE,
        "cases": [c.as_dict() for c in cases_of(ordered)],
        "alerts": [a.model_dump(mode="json") for a in ordered],
        "count": len(ordered),
        "severity": ordered[0].severity.value,
        "report_ids": sorted({a.report_id for a in ordered}),
        "rule_ids": sorted({a.rule_id for a in ordered}),
        "crossings": sorted({a.crossing for a in ordered if a.crossing}),
        "crossing": next((a.crossing for a in ordered if a.crossing), None),
        "source": next((a.source for a in ordered if a.source), None),
        "urls": sorted({a.url for a in ordered if a.url}),
    }


def amount(value: float | None) -> str:
    """``168000.0`` -> ``168,000``; ``1234.5`` -> ``1,234.5``."""
    return "" if value is None else format_amount(value)


def moment(value: str | None) -> str:
    """An ISO time as people read it: ``2026-03-06 09:05 UTC`` (the date alone at midnight)."""
    if not value:
        return ""
    at = datetime.fromisoformat(value).astimezone(UTC)
    if (at.hour, at.minute, at.second) == (0, 0, 0):
        return at.strftime("%Y-%m-%d")
    return at.strftime("%Y-%m-%d %H:%M UTC")


_MARKS = {"text": ("«", "»"), "markdown": ("**", "**")}


def quoted(item: Mapping[str, Any], fmt: str = "text") -> str | Markup:
    """An item's quote with the words that named it marked: «lathes» in text, **lathes** in
    markdown, <mark>lathes</mark> in HTML (the rest escaped)."""
    quote = item.get("quote")
    if not quote:
        return ""
    pieces = marked(quote, item.get("marks") or [])
    if fmt == "html":
        return Markup("").join(Markup("<mark>{}</mark>").format(p) if on else escape(p) for p, on in pieces)
    before, after = _MARKS.get(fmt, _MARKS["text"])
    return "".join(f"{before}{p}{after}" if on else p for p, on in pieces)


def _environment(*, autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(amount=amount, moment=moment, quoted=quoted)
    return env


class Renderer:
    """The default templates, with any of them replaced by files (``overrides``: name -> path)."""

    def __init__(self, directory: Path = TEMPLATES, overrides: Mapping[str, Path] | None = None) -> None:
        self.plain = _environment(autoescape=False)
        self.html = _environment(autoescape=True)
        chosen = {name: directory / ("title.j2" if name == "title" else f"{name}.j2") for name in NAMES}
        chosen.update(overrides or {})
        self.templates: dict[str, Template] = {}
        for name, path in chosen.items():
            if name not in NAMES:
                raise TemplateProblem(str(path), None, f"unknown template {name!r}; use {', '.join(NAMES)}")
            env = self.html if name == "html" else self.plain
            try:
                self.templates[name] = env.from_string(path.read_text(encoding="utf-8"))
            except OSError as error:
                raise TemplateProblem(str(path), None, f"cannot be read: {error.strerror}") from error
            except TemplateSyntaxError as error:
                raise TemplateProblem(str(path), error.lineno, error.message or "syntax error") from error
        self.sources = chosen
        self.check()

    def check(self) -> None:
        """Render every template on sample alerts: a missing variable or a filter error fails here."""
        context = context_for(sample_alerts())
        for name, template in self.templates.items():
            try:
                template.render(context)
            except TemplateError as error:
                line = getattr(error, "lineno", None)
                raise TemplateProblem(
                    str(self.sources[name]), line, f"trial render failed: {error}"
                ) from error

    def render(self, alerts: Sequence[Alert], fmt: str) -> Message:
        context = context_for(alerts)
        title = " ".join(self.templates["title"].render(context).split())
        if fmt == "json":
            # For programs: the cases and their alerts as objects, and the text for people. The
            # JSON channels put these keys into their payload, so a program parses it once.
            text = self.templates["text"].render(context).strip()
            document = {"message": text, "cases": context["cases"], "alerts": context["alerts"]}
            return Message(title, json.dumps(document, ensure_ascii=False), fmt, context["severity"])
        body = self.templates.get(fmt, self.templates["text"]).render(context).strip()
        return Message(title, body, fmt, context["severity"])
