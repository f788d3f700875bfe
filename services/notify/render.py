"""Messages people can act on: sandboxed Jinja2 templates for title and body, per format.

One message may carry several alerts (one report that tripped several rules, or a group):
the templates get them all, worst first. Templates run in Jinja's sandbox, so a template file
cannot reach Python internals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from schemas.alert import Alert

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("text", "markdown", "html")


@dataclass(frozen=True)
class Message:
    title: str
    body: str


class Renderer:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.plain = ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, trim_blocks=False, autoescape=False
        )
        self.html = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        try:
            self.title = self.plain.from_string((directory / "title.j2").read_text(encoding="utf-8"))
            self.bodies = {
                fmt: (self.html if fmt == "html" else self.plain).from_string(
                    (directory / f"{fmt}.j2").read_text(encoding="utf-8")
                )
                for fmt in FORMATS
            }
        except (OSError, TemplateError) as error:
            raise ValueError(f"templates in {directory}: {error}") from error

    def render(self, alerts: Sequence[Alert], fmt: str) -> Message:
        ordered = sorted(alerts, key=lambda a: (-a.severity.rank, a.rule_id))
        context = {
            "alerts": [a.model_dump(mode="json") for a in ordered],
            "severity": ordered[0].severity.value,
            "report_ids": sorted({a.report_id for a in ordered}),
            "crossing": next((a.crossing for a in ordered if a.crossing), None),
            "source": next((a.source for a in ordered if a.source), None),
            "urls": sorted({a.url for a in ordered if a.url}),
        }
        title = self.title.render(context).strip()
        if fmt == "json":
            body = json.dumps({"alerts": context["alerts"]}, ensure_ascii=False)
        else:
            body = self.bodies.get(fmt, self.bodies["text"]).render(context).strip()
        return Message(title, body)
