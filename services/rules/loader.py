"""Load and check the rule files, catalog and rates into one compiled rule set.

Every problem in every file is collected and reported together (file, line, a plain sentence),
so ``tradewatch rules check`` shows them all at once and a worker refuses to start on any.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from schemas.rules import Exception_, ExceptionsFile, ItemCondition, ReportCondition, Rule, RuleFile
from services.goods.catalog import Catalog, load_catalog
from services.money import Rates, load_rates
from services.rules.engine import RuleSet, compile_rules
from services.settings import Settings
from services.yamlfile import ConfigError, Document, Problem, load


def _conditions(
    cond: ReportCondition | ItemCondition, loc: tuple[str | int, ...]
) -> Iterator[tuple[ReportCondition | ItemCondition, tuple[str | int, ...]]]:
    yield cond, loc
    for name in ("all_", "any_"):
        for index, child in enumerate(getattr(cond, name) or ()):
            yield from _conditions(child, (*loc, name.rstrip("_"), index))
    if cond.not_ is not None:
        yield from _conditions(cond.not_, (*loc, "not"))
    if isinstance(cond, ReportCondition) and cond.item is not None:
        yield from _conditions(cond.item, (*loc, "item"))


def _check_rule(doc: Document, rule: Rule, index: int, catalog: Catalog, rates: Rates) -> list[Problem]:
    problems = []
    roots: list[tuple[ReportCondition, tuple[str | int, ...]]] = [(rule.when, ("rules", index, "when"))]
    roots += [(e.when, ("rules", index, "escalate", i, "when")) for i, e in enumerate(rule.escalate)]
    for root, root_loc in roots:
        for cond, loc in _conditions(root, root_loc):
            if isinstance(cond, ItemCondition):
                for cat in cond.categories or ():
                    if cat not in catalog.categories:
                        known = ", ".join(sorted(catalog.categories))
                        problems.append(
                            Problem(
                                doc.file,
                                doc.line_of((*loc, "categories")),
                                f"rule {rule.id!r}: unknown category {cat!r} (the catalog has: {known})",
                            )
                        )
            amounts = [getattr(cond, n, None) for n in ("unit_price", "value", "total_value")]
            for amount in amounts:
                if amount is not None and amount.currency not in rates.rates:
                    problems.append(
                        Problem(
                            doc.file,
                            doc.line_of(loc),
                            f"rule {rule.id!r}: currency {amount.currency} is not in the rates table",
                        )
                    )
    for i, esc in enumerate(rule.escalate):
        if esc.to == rule.severity:
            problems.append(
                Problem(
                    doc.file,
                    doc.line_of(("rules", index, "escalate", i, "to")),
                    f"rule {rule.id!r}: escalation to {esc.to.value} leaves the severity as it is;"
                    " give a higher or a lower one",
                )
            )
    problems += _duplicate_exception_ids(doc, rule.id, rule.exceptions, ("rules", index, "exceptions"))
    return problems


def _duplicate_exception_ids(
    doc: Document,
    rule_id: str,
    exceptions: Sequence[Exception_],
    loc: tuple[str | int, ...],
    taken: set[str] | None = None,
) -> list[Problem]:
    seen = taken if taken is not None else set()
    problems = []
    for i, exc in enumerate(exceptions):
        if exc.id in seen:
            problems.append(
                Problem(
                    doc.file,
                    doc.line_of((*loc, i, "id")),
                    f"rule {rule_id!r}: exception id {exc.id!r} is used twice",
                )
            )
        seen.add(exc.id)
    return problems


def load_exceptions(
    paths: Sequence[Path], rules: dict[str, Rule]
) -> tuple[dict[str, list[Exception_]], list[Problem]]:
    """Teams' exception files, keyed by rule id: what to append to each rule, and every problem."""
    added: dict[str, list[Exception_]] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            doc = load(path)
            parsed = doc.validate(ExceptionsFile)
        except ConfigError as error:
            problems += error.problems
            continue
        for rule_id, exceptions in parsed.exceptions.items():
            loc: tuple[str | int, ...] = ("exceptions", rule_id)
            rule = rules.get(rule_id)
            if rule is None:
                problems.append(
                    Problem(
                        doc.file,
                        doc.line_of(loc),
                        f"no rule has the id {rule_id!r}, so its exceptions would never apply",
                    )
                )
                continue
            taken = {e.id for e in rule.exceptions} | {e.id for e in added.get(rule_id, [])}
            problems += _duplicate_exception_ids(doc, rule_id, exceptions, loc, taken)
            added.setdefault(rule_id, []).extend(exceptions)
    return added, problems


def load_ruleset(
    rule_files: Sequence[Path], catalog_file: Path, rates_file: Path, exception_files: Sequence[Path] = ()
) -> RuleSet:
    """Every file checked, every problem collected; a :class:`ConfigError` lists them all."""
    problems: list[Problem] = []
    catalog: Catalog | None = None
    rates: Rates | None = None
    try:
        catalog = load_catalog(catalog_file)
    except ConfigError as error:
        problems += error.problems
    try:
        rates = load_rates(rates_file)
    except ConfigError as error:
        problems += error.problems
    rules: list[Rule] = []
    owner: dict[str, str] = {}
    for path in rule_files:
        try:
            doc = load(path)
            parsed = doc.validate(RuleFile)
        except ConfigError as error:
            problems += error.problems
            continue
        for index, rule in enumerate(parsed.rules):
            if rule.id in owner:
                problems.append(
                    Problem(
                        doc.file,
                        doc.line_of(("rules", index, "id")),
                        f"rule id {rule.id!r} is already defined in {owner[rule.id]}",
                    )
                )
                continue
            owner[rule.id] = f"{doc.file}:{doc.line_of(('rules', index))}"
            if catalog is not None and rates is not None:
                problems += _check_rule(doc, rule, index, catalog, rates)
            rules.append(rule)
    if not rule_files:
        problems.append(Problem("(settings)", None, "no rule files given"))
    added, exception_problems = load_exceptions(exception_files, {r.id: r for r in rules})
    problems += exception_problems
    if problems:
        raise ConfigError(problems)
    assert catalog is not None
    assert rates is not None
    # Appended exceptions are part of the rule: its version changes with them.
    merged = [
        r.model_copy(update={"exceptions": [*r.exceptions, *added[r.id]]}) if r.id in added else r
        for r in rules
    ]
    sources = [str(p) for p in (*rule_files, *exception_files)]
    return compile_rules(merged, catalog, rates, sources)


def watched_files(settings: Settings) -> list[Path]:
    """Every file a rule set is built from: a change to any of them means a reload."""
    return [*settings.rules_files, *settings.exceptions_files, settings.catalog_file, settings.rates_file]


def load_from_settings(settings: Settings) -> RuleSet:
    return load_ruleset(
        settings.rules_files, settings.catalog_file, settings.rates_file, settings.exceptions_files
    )
