"""Alerts as cases: everything found in one report, read as one case by the person who acts on it.

The alert stream keeps one alert per rule (the contract); a person wants one case per shipment.
``cases_of`` turns the alerts of a message into cases, worst first:

- the shared facts once (dates, route and crossing, parties, source and link);
- each matched item once, with quantity, unit, unit price and value (stated and in the base
  currency), and how it was classified;
- findings: alerts about the same items read as one finding with several reasons (a chapter
  ban, dual-use, second-hand and high value on one lathe are one finding, four reasons), each
  reason with its rule, severity and legal basis.

Pure: alerts in, plain data out, for the notifier's templates and webhooks (``as_dict``), and
for the store of record and its console, which show a case the way the notifier presents it.
It sits below the stages (see the layers in pyproject.toml), so each of them may use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas.alert import Alert, MatchedItem, Severity
from schemas.countries import NAMES
from services.goods.hscodes import hs_display
from services.money import format_amount
from services.textmatch import clip

HEADLINE_ITEMS = 3
_PARENTHESES = re.compile(r"\s*\([^)]*\)")


def country(code: str | None) -> str | None:
    """``KP`` -> ``North Korea (KP)``."""
    if not code:
        return None
    name = NAMES.get(code)
    return f"{name} ({code})" if name else code


@dataclass
class CaseItem:
    """One line of goods of the report that some rule named."""

    index: int
    description: str
    hs_code: str | None
    categories: list[str]
    quantity: float | None = None
    unit: str | None = None
    unit_price: float | None = None
    currency: str | None = None
    value: float | None = None
    value_base: float | None = None
    base_currency: str | None = None
    classified: list[str] = field(default_factory=list)
    """How the item was recognised (the same whichever rule named it)."""
    quote: str | None = None
    """For goods found in text: the sentence that named the item."""
    marks: list[tuple[int, int]] = field(default_factory=list)
    """Spans in ``quote`` of the words that named it (and of its markers), to show them marked."""

    @property
    def label(self) -> str:
        hs = hs_display(self.hs_code)
        return f"{self.description} (HS {hs})" if hs else self.description

    @property
    def name(self) -> str:
        """The description without its remarks in parentheses: how a finding names the item."""
        short = _PARENTHESES.sub("", self.description).strip(" ;,") or self.description
        hs = hs_display(self.hs_code)
        return f"{short} (HS {hs})" if hs else short

    @property
    def quantity_text(self) -> str:
        if self.quantity is None:
            return ""
        return f"{_number(self.quantity)} {_unit(self.unit, self.quantity)}"

    @property
    def amounts(self) -> str:
        """``40 units at 42,000 CNY a unit = 1,680,000 CNY (231,840 USD)``; empty when none given."""
        parts = [self.quantity_text] if self.quantity_text else []
        if self.unit_price is not None:
            price = f"{format_amount(self.unit_price)} {self.currency} a unit"
            parts.append(f"at {price}" if parts else price)
        line = " ".join(parts)
        if self.value is not None:
            line += f" = {format_amount(self.value)} {self.currency}"
            if self.value_base is not None and self.base_currency != self.currency:
                line += f" ({format_amount(self.value_base)} {self.base_currency})"
        return line


@dataclass
class Reason:
    """One rule's verdict within a finding."""

    rule_id: str
    title: str
    severity: str
    legal_basis: str
    why: list[str]
    alert_id: str


@dataclass
class Finding:
    """What one or more rules said about the same items (or about the report as a whole)."""

    severity: str
    what: str
    items: list[int]
    reasons: list[Reason]


@dataclass
class Case:
    """Everything found in one report."""

    report_id: str
    severity: str
    headline: str
    findings: list[Finding]
    items: list[CaseItem]
    common: list[str]
    """Conditions every finding shares (the destination, say), said once."""
    reported_at: str | None
    origin_country: str | None
    destination_country: str | None
    crossing: str | None
    importer: str | None
    exporter: str | None
    source: str | None
    url: str | None
    alert_ids: list[str]
    unrecognised: list[str] = field(default_factory=list)
    """Goods of the report the catalog could not classify: for a person to look at."""

    @property
    def route(self) -> str | None:
        ends = [country(self.origin_country) or "?", country(self.destination_country) or "?"]
        return None if ends == ["?", "?"] else " -> ".join(ends)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for templates and webhooks, with the derived fields spelled out."""
        data = asdict(self)
        data["route"] = self.route
        for item, plain in zip(self.items, data["items"], strict=True):
            plain["label"] = item.label
            plain["amounts"] = item.amounts
            plain["quantity_text"] = item.quantity_text
            plain["hs_display"] = hs_display(item.hs_code)
        return data


_COUNTED_UNITS = frozenset({"unit", "set", "piece", "machine", "vehicle", "vessel", "item", "lot", "box"})


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"


def _unit(unit: str | None, quantity: float) -> str:
    """``unit`` -> ``units`` for more than one; measures (kg, t, m3) as they are."""
    word = unit or "unit"
    return f"{word}s" if quantity != 1 and word.lower() in _COUNTED_UNITS else word


def marked(quote: str, marks: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``quote`` cut into pieces, each marked or not: the marked ones are the spans given (merged
    where they overlap), for a rendering to show as it can (bold, a highlight, «quotes»)."""
    spans: list[tuple[int, int]] = []
    for a, b in sorted((max(0, a), min(len(quote), b)) for a, b in marks):
        if a >= b:
            continue
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    pieces: list[tuple[str, bool]] = []
    at = 0
    for a, b in spans:
        if a > at:
            pieces.append((quote[at:a], False))
        pieces.append((quote[a:b], True))
        at = b
    if at < len(quote):
        pieces.append((quote[at:], False))
    return pieces


def cases_of(alerts: Sequence[Alert]) -> list[Case]:
    """The alerts grouped by report, worst case first (then the earliest report)."""
    by_report: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_report.setdefault(alert.report_id, []).append(alert)
    cases = [_case(group) for group in by_report.values()]
    cases.sort(key=lambda c: (-Severity(c.severity).rank, c.reported_at or "", c.report_id))
    return cases


def _case(alerts: list[Alert]) -> Case:
    alerts = sorted(alerts, key=lambda a: (-a.severity.rank, a.rule_id))
    first = alerts[0]
    items = _items(alerts)
    # What every alert says about the report (its destination, say) is said once, for the case.
    common = [e for e in first.evidence if all(e in a.evidence for a in alerts[1:])]
    findings = _findings(alerts, items, common)
    return Case(
        report_id=first.report_id,
        severity=first.severity.value,
        headline=_headline(alerts, items, findings),
        findings=findings,
        items=[items[i] for i in sorted(items)],
        common=common,
        reported_at=first.reported_at.isoformat() if first.reported_at else None,
        origin_country=first.origin_country,
        destination_country=first.destination_country,
        crossing=first.crossing,
        importer=first.importer,
        exporter=first.exporter,
        source=first.source,
        url=first.url,
        alert_ids=[a.alert_id for a in alerts],
        unrecognised=list(dict.fromkeys(u for a in alerts for u in a.unrecognised)),
    )


_AS_REPORTED = (
    "hs_code",
    "quantity",
    "unit",
    "unit_price",
    "currency",
    "value",
    "value_base",
    "base_currency",
    "quote",
)
"""Fields of a matched item a case shows as the alert has them."""


def _items(alerts: Sequence[Alert]) -> dict[int, CaseItem]:
    """Each matched item once, with how it was classified; what each rule found about it stays
    with that rule's reason."""
    seen: dict[int, list[MatchedItem]] = {}
    for alert in alerts:
        for m in alert.matched_items:
            seen.setdefault(m.index, []).append(m)
    items = {}
    for index, versions in seen.items():
        m = versions[0]
        shared = list(m.classification)
        items[index] = CaseItem(
            index=index,
            description=m.description or f"item {index + 1}",
            categories=sorted({c for v in versions for c in v.categories}),
            classified=shared,
            marks=[(a, b) for a, b in m.marks],
            **{name: getattr(m, name) for name in _AS_REPORTED},
        )
    return items


def _findings(alerts: Sequence[Alert], items: dict[int, CaseItem], common: list[str]) -> list[Finding]:
    """Items named by the same rules, at the same severity, are one finding, with each rule as a
    reason; an alert about the report as a whole (a party, a surge at a crossing) is a finding of
    its own. A rule raised for some items only (second-hand ones) is raised for those only."""
    named: dict[int, list[tuple[Alert, MatchedItem]]] = {}
    for alert in alerts:
        for m in alert.matched_items:
            named.setdefault(m.index, []).append((alert, m))
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for index in sorted(named):
        key = tuple((a.alert_id, _severity(a, m).value) for a, m in named[index])
        groups.setdefault(key, []).append(index)
    by_id = {a.alert_id: a for a in alerts}
    findings = []
    for key, indexes in groups.items():
        reasons = []
        for alert_id, severity in key:
            alert = by_id[alert_id]
            reasons.append(_reason(alert, Severity(severity), set(indexes), items, common))
        reasons.sort(key=lambda r: -Severity(r.severity).rank)
        findings.append(Finding(reasons[0].severity, _names([items[i] for i in indexes]), indexes, reasons))
    for alert in alerts:
        if not alert.matched_items:
            reason = _reason(alert, alert.severity, set(), items, common)
            findings.append(Finding(alert.severity.value, "the report as a whole", [], [reason]))
    findings.sort(key=lambda f: -Severity(f.severity).rank)
    return findings


def _severity(alert: Alert, item: MatchedItem) -> Severity:
    return item.severity or alert.severity


def _reason(
    alert: Alert, severity: Severity, indexes: set[int], items: dict[int, CaseItem], common: list[str]
) -> Reason:
    why: list[str] = []
    per_item = any(m.severity is not None for m in alert.matched_items)
    for m in alert.matched_items:
        if m.index in indexes:
            why += [e for e in m.evidence if e not in items[m.index].classified and e not in why]
            if m.severity_reason and m.severity_reason not in why:
                why.append(m.severity_reason)
    for line in alert.evidence:
        # With each item's own severity, the alert-wide "severity raised" line would claim it for all.
        if per_item and line.startswith(("severity raised to ", "severity lowered to ")):
            continue
        if line not in why and line not in common:
            why.append(line)
    return Reason(
        rule_id=alert.rule_id,
        title=alert.title,
        severity=severity.value,
        legal_basis=alert.legal_basis,
        why=_compact(why),
        alert_id=alert.alert_id,
    )


_HS_LINE = re.compile(r"^HS (?P<code>[\d.]+) \((?P<how>[^)]*)\) (?P<scope>falls in .+)$")


def _compact(lines: list[str]) -> list[str]:
    """Lines that say the same of several codes read as one: ``HS 8432 and 8433 (classified from
    the description) fall in chapters 84 to 85``."""
    merged: dict[tuple[str, str], list[str]] = {}
    out: list[str | tuple[str, str]] = []
    for line in lines:
        match = _HS_LINE.match(line)
        if match is None:
            out.append(line)
            continue
        key = (match["how"], match["scope"])
        if key not in merged:
            merged[key] = []
            out.append(key)
        merged[key].append(match["code"])
    result = []
    for entry in out:
        if isinstance(entry, str):
            result.append(entry)
            continue
        codes = merged[entry]
        how, scope = entry
        if len(codes) == 1:
            result.append(f"HS {codes[0]} ({how}) {scope}")
        else:
            listed = ", ".join(codes[:-1]) + f" and {codes[-1]}"
            result.append(f"HS {listed} ({how}) {scope.replace('falls in', 'fall in', 1)}")
    return result


NAMED_IN_A_FINDING = 6


def _names(items: Sequence[CaseItem]) -> str:
    """``lathes (HS 8458), presses (HS 8462) and grinders (HS 8460)``; past six, how many more."""
    labels = [i.name for i in items]
    if len(labels) > NAMED_IN_A_FINDING:
        shown = labels[: NAMED_IN_A_FINDING - 1]
        return ", ".join(shown) + f" and {len(labels) - len(shown)} more items (listed below)"
    if len(labels) <= 1:
        return labels[0] if labels else ""
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _headline(alerts: Sequence[Alert], items: dict[int, CaseItem], findings: Sequence[Finding]) -> str:
    """What was seen, where it went: ``tractors, seeders and 2 more to North Korea via Dandong``."""
    order = list(dict.fromkeys(i for f in findings for i in f.items))
    named = [
        clip(_PARENTHESES.sub("", items[i].description).strip(" ;,") or items[i].description, 40)
        for i in order
    ]
    if named:
        shown = named[:HEADLINE_ITEMS]
        what = ", ".join(shown) + (f" and {len(named) - len(shown)} more" if len(named) > len(shown) else "")
    else:
        what = alerts[0].title
    first = alerts[0]
    where = []
    if first.destination_country:
        where.append(f"to {NAMES.get(first.destination_country, first.destination_country)}")
    if first.crossing:
        where.append(f"via {first.crossing}")
    return " ".join([what, *where])
