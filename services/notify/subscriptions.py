"""Subscriptions (config/subscriptions.yaml): which team hears about what, through which channels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from schemas.alert import Alert, Severity
from schemas.base import StrictModel
from schemas.durations import Duration
from services.notify.render import Renderer, TemplateProblem
from services.textmatch import normalise
from services.yamlfile import ConfigError, Problem, load

GroupField = Literal[
    "report_id", "rule_id", "severity", "crossing", "category", "source", "origin_country",
    "destination_country", "importer", "hs_chapter",
]  # fmt: skip
TemplateName = Literal["title", "text", "markdown", "html"]


class Subscription(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9\-_.]{0,63}$")
    description: str = ""
    channels: list[str] = Field(min_length=1, description="Apprise tags of the channels to send to")
    min_severity: Severity = Severity.INFO
    rules: list[str] = Field(default_factory=list, description="rule ids; empty: any")
    tags: list[str] = Field(default_factory=list, description="rule tags; empty: any")
    categories: list[str] = Field(default_factory=list, description="item categories; empty: any")
    crossings: list[str] = Field(default_factory=list, description="crossing names; empty: any")
    countries: list[str] = Field(default_factory=list, description="origin or destination; empty: any")
    mode: Literal["immediate", "digest"] = "immediate"
    digest_interval: Duration | None = Field(
        default=None, gt=0, description="digest mode: one message per interval (aligned to the epoch, UTC)"
    )
    group_wait: Duration | None = Field(
        default=None, ge=0, description="alerts sharing a group key within it become one message"
    )
    group_by: list[GroupField] = Field(
        default_factory=list, description="group on these alert fields instead of the rule's group key"
    )
    realert: Duration | None = Field(
        default=None, ge=0, description="re-alert window for the same case; overrides the rule's"
    )
    coalesce: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="messages due at once sent as one, at most this many (1: one message per send); "
        "overrides TRADEWATCH_NOTIFY_COALESCE",
    )
    templates: dict[TemplateName, str] = Field(
        default_factory=dict, description="template files (relative to this file) replacing the defaults"
    )

    @model_validator(mode="after")
    def _digest_needs_interval(self) -> Subscription:
        if self.mode == "digest" and self.digest_interval is None:
            raise ValueError("mode: digest needs digest_interval (e.g. 1h)")
        if self.mode != "digest" and self.digest_interval is not None:
            raise ValueError("digest_interval applies only with mode: digest")
        return self

    def wants(self, alert: Alert) -> bool:
        if alert.severity.rank < self.min_severity.rank:
            return False
        if self.rules and alert.rule_id not in self.rules:
            return False
        if self.tags and not set(self.tags) & set(alert.tags):
            return False
        if self.categories:
            seen = {c for item in alert.matched_items for c in item.categories}
            if not seen & set(self.categories):
                return False
        if self.crossings:
            crossing = normalise(alert.crossing or "")
            if not any(normalise(c).strip() in crossing for c in self.crossings):
                return False
        return not self.countries or bool(
            {alert.origin_country, alert.destination_country} & set(self.countries)
        )


class SubscriptionFile(StrictModel):
    version: Literal[1] = 1
    subscriptions: list[Subscription] = Field(min_length=1)


def load_subscriptions(path: Path, channel_tags: Sequence[str] | None = None) -> list[Subscription]:
    """Load and check; with ``channel_tags``, every tag a subscription names must be carried."""
    doc = load(path)
    parsed = doc.validate(SubscriptionFile)
    problems = []
    names: set[str] = set()
    resolved: list[Subscription] = []
    known_tags = set(channel_tags) if channel_tags is not None else None
    for index, sub in enumerate(parsed.subscriptions):
        if sub.name in names:
            problems.append(
                Problem(
                    doc.file,
                    doc.line_of(("subscriptions", index, "name")),
                    f"subscription {sub.name!r} is defined twice",
                )
            )
        names.add(sub.name)
        if known_tags is not None:
            for tag in sub.channels:
                if tag not in known_tags:
                    problems.append(Problem(
                        doc.file, doc.line_of(("subscriptions", index, "channels")),
                        f"subscription {sub.name!r}: no channel carries the tag {tag!r} "
                        f"(tags in the channels file: {', '.join(sorted(known_tags)) or 'none'})",
                    ))  # fmt: skip
        if sub.templates:
            base = path.parent
            files = {name: str((base / file).resolve()) for name, file in sub.templates.items()}
            sub = sub.model_copy(update={"templates": files})
            try:
                renderer_for(sub)
            except TemplateProblem as error:
                if error.line:  # a problem inside the template file: point at its line
                    problems.append(
                        Problem(error.file, error.line, f"subscription {sub.name!r}: {error.message}")
                    )
                else:
                    line = doc.line_of(("subscriptions", index, "templates"))
                    problems.append(Problem(doc.file, line, f"subscription {sub.name!r}: {error}"))
        resolved.append(sub)
    if problems:
        raise ConfigError(problems)
    return resolved


def renderer_for(sub: Subscription) -> Renderer:
    """The subscription's templates (checked: compiled and tried on sample alerts)."""
    return Renderer(overrides={name: Path(file) for name, file in sub.templates.items()})
