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

from schemas.alert import Alert, MatchedItem, Severity

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("text", "markdown", "html")
NAMES = ("title", *FORMATS)


@dataclass(frozen=True)
class Message:
    title: str
    body: str


class TemplateProblem(ValueError):
    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


def sample_alerts() -> list[Alert]:
    """Two alerts of one report, for trial renders and ``notify preview`` examples."""
    common: dict[str, Any] = {
        "report_id": "sample-report", "source": "sample", "crossing": "Hunchun-Rason",
        "origin_country": "CN", "destination_country": "KP", "created_at": datetime(2026, 3, 6, tzinfo=UTC),
        "url": "https://example.org/report", "dedup_key": "sample", "group_key": "sample",
        "legal_basis": "UNSCR 2397 (2017) OP7", "rule_version": "v1",
    }  # fmt: skip
    item = MatchedItem(
        index=0, description="CNC cutting machines", hs_code="8456.11",
        categories=["machine-tools"], evidence=["HS 8456 is in chapters 84"],
    )  # fmt: skip
    return [
        Alert(
            alert_id="a-sample-1",
            rule_id="shipyard-equipment",
            severity=Severity.CRITICAL,
            title="Shipyard equipment to the DPRK",
            summary="CNC cutting machines",
            matched_items=[item],
            evidence=["severity raised to critical: second-hand machinery"],
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
    ]


def context_for(alerts: Sequence[Alert]) -> dict[str, Any]:
    ordered = sorted(alerts, key=lambda a: (-a.severity.rank, a.rule_id, a.report_id))
    return {
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


class Renderer:
    """The default templates, with any of them replaced by files (``overrides``: name -> path)."""

    def __init__(self, directory: Path = TEMPLATES, overrides: Mapping[str, Path] | None = None) -> None:
        self.plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.html = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
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
            body = json.dumps({"title": title, "alerts": context["alerts"]}, ensure_ascii=False)
        else:
            body = self.templates.get(fmt, self.templates["text"]).render(context).strip()
        return Message(title, body)
