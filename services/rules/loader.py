"""Load and check the rule files, catalog and rates into one compiled rule set.

Every problem in every file is collected and reported together (file, line, field, a plain
sentence), so ``tradewatch rules check`` shows them all at once and a worker refuses to start on
any. A value that could never match is a problem too: a crossing or a category the catalog does
not know, an HS code in no chapter (or, with the nomenclature, not in it), a currency without a
rate, an exception for a rule that does not exist; countries are checked by the model
(``schemas/countries.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from schemas.rules import Amount, Exception_, ExceptionsFile, ItemCondition, ReportCondition, Rule, RuleFile
from services.goods import hscodes, vocabulary
from services.goods.catalog import Catalog, load_catalog
from services.goods.hscodes import Nomenclature
from services.money import Rates, load_rates
from services.rules.engine import RuleSet, compile_rules
from services.settings import Settings
from services.yamlfile import ConfigError, Document, Problem, did_you_mean, load


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


@dataclass(frozen=True)
class Known:
    """What a rule's values are checked against: the catalog, the rates, the HS nomenclature."""

    catalog: Catalog
    rates: Rates
    nomenclature: Nomenclature | None = None


def _check_rule(doc: Document, rule: Rule, index: int, known: Known) -> list[Problem]:
    problems = []
    roots: list[tuple[ReportCondition, tuple[str | int, ...]]] = [(rule.when, ("rules", index, "when"))]
    roots += [(e.when, ("rules", index, "escalate", i, "when")) for i, e in enumerate(rule.escalate)]
    for root, root_loc in roots:
        for cond, loc in _conditions(root, root_loc):
            problems += _check_condition(doc, cond, loc, known)
    for i, esc in enumerate(rule.escalate):
        if esc.to == rule.severity:
            problems.append(
                doc.problem(
                    ("rules", index, "escalate", i, "to"),
                    f"escalation to {esc.to.value} leaves the severity of rule {rule.id!r} as it is;"
                    " give a higher or a lower one",
                )
            )
    exceptions_loc: tuple[str | int, ...] = ("rules", index, "exceptions")
    problems += _check_exceptions(doc, rule.exceptions, exceptions_loc, known)
    problems += _duplicate_exception_ids(doc, rule.id, rule.exceptions, exceptions_loc)
    return problems


def _check_condition(
    doc: Document, cond: ReportCondition | ItemCondition, loc: tuple[str | int, ...], known: Known
) -> list[Problem]:
    """Values of one condition that can never match: unknown categories, crossings, HS codes, currencies."""
    problems = []
    if isinstance(cond, ItemCondition):
        for i, cat in enumerate(cond.categories or ()):
            try:
                vocabulary.category(known.catalog, cat)
            except ValueError as error:
                problems.append(doc.problem((*loc, "categories", i), str(error)))
        for i, selector in enumerate(cond.hs or ()):
            if (problem := hscodes.selector_problem(selector, known.nomenclature)) is not None:
                problems.append(doc.problem((*loc, "hs", i), problem))
    else:
        problems += _check_crossings(doc, cond.crossing, (*loc, "crossing"), known)
    for name in ("unit_price", "value", "total_value"):
        amount: Amount | None = getattr(cond, name, None)
        if amount is not None and amount.currency not in known.rates.rates:
            hint = did_you_mean(amount.currency, known.rates.rates)
            problems.append(
                doc.problem(
                    (*loc, name, "currency"),
                    f"currency {amount.currency} is not in the rates table"
                    f" ({', '.join(sorted(known.rates.rates))}){hint}",
                )
            )
    return problems


def _check_crossings(
    doc: Document, crossings: Sequence[str] | None, loc: tuple[str | int, ...], known: Known
) -> list[Problem]:
    problems = []
    for i, value in enumerate(crossings or ()):
        try:
            vocabulary.crossing(known.catalog, value)
        except ValueError as error:
            problems.append(doc.problem((*loc, i), str(error)))
    return problems


def _check_exceptions(
    doc: Document, exceptions: Sequence[Exception_], loc: tuple[str | int, ...], known: Known
) -> list[Problem]:
    problems = []
    for i, exc in enumerate(exceptions):
        problems += _check_crossings(doc, exc.crossing, (*loc, i, "crossing"), known)
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
                doc.problem((*loc, i, "id"), f"exception id {exc.id!r} is used twice in rule {rule_id!r}")
            )
        seen.add(exc.id)
    return problems


def _sound_rules(doc: Document) -> tuple[list[tuple[int, Rule]], set[str]]:
    """In a rule file with errors: the rules that validate on their own, and the ids of the others."""
    sound: list[tuple[int, Rule]] = []
    broken: set[str] = set()
    raw = doc.data.get("rules") if isinstance(doc.data, dict) else None
    for index, entry in enumerate(raw if isinstance(raw, list) else ()):
        try:
            sound.append((index, Rule.model_validate(entry)))
        except ValidationError:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                broken.add(entry["id"])
    return sound, broken


def load_exceptions(
    paths: Sequence[Path],
    rules: dict[str, Rule],
    known: Known | None = None,
    broken: Collection[str] = (),
) -> tuple[dict[str, list[Exception_]], list[Problem]]:
    """Teams' exception files, keyed by rule id: what to append to each rule, and every problem.

    ``broken``: ids of rules whose own errors are reported already; their exceptions are not
    said to be orphans."""
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
            if rule is None and rule_id in broken:
                continue
            if rule is None:
                problems.append(
                    doc.problem(
                        loc,
                        f"no rule has the id {rule_id!r}, so its exceptions would never apply"
                        + did_you_mean(rule_id, rules),
                    )
                )
                continue
            if known is not None:
                problems += _check_exceptions(doc, exceptions, loc, known)
            taken = {e.id for e in rule.exceptions} | {e.id for e in added.get(rule_id, [])}
            problems += _duplicate_exception_ids(doc, rule_id, exceptions, loc, taken)
            added.setdefault(rule_id, []).extend(exceptions)
    return added, problems


def load_ruleset(
    rule_files: Sequence[Path],
    catalog_file: Path,
    rates_file: Path,
    exception_files: Sequence[Path] = (),
    nomenclature_file: Path | None = None,
) -> RuleSet:
    """Every file checked, every problem collected; a :class:`ConfigError` lists them all.

    With ``nomenclature_file`` (the HS nomenclature as CSV) every HS code of a rule must exist
    in it; without, its chapter must.
    """
    problems: list[Problem] = []
    catalog: Catalog | None = None
    rates: Rates | None = None
    nomenclature: Nomenclature | None = None
    try:
        catalog = load_catalog(catalog_file)
    except ConfigError as error:
        problems += error.problems
    try:
        rates = load_rates(rates_file)
    except ConfigError as error:
        problems += error.problems
    if nomenclature_file is not None:
        try:
            nomenclature = hscodes.load_nomenclature(nomenclature_file)
        except ConfigError as error:
            problems += error.problems
    known = Known(catalog, rates, nomenclature) if catalog is not None and rates is not None else None
    rules: list[Rule] = []
    owner: dict[str, str] = {}
    broken: set[str] = set()
    for path in rule_files:
        try:
            doc = load(path)
        except ConfigError as error:
            problems += error.problems
            continue
        try:
            in_file = list(enumerate(doc.validate(RuleFile).rules))
        except ConfigError as error:
            problems += error.problems
            # The rules whose shape is right are still checked: every problem is told at once.
            in_file, broken_here = _sound_rules(doc)
            broken |= broken_here
        for index, rule in in_file:
            if rule.id in owner:
                problems.append(
                    doc.problem(
                        ("rules", index, "id"), f"rule id {rule.id!r} is already defined in {owner[rule.id]}"
                    )
                )
                continue
            owner[rule.id] = f"{doc.file}:{doc.line_of(('rules', index))}"
            if known is not None:
                problems += _check_rule(doc, rule, index, known)
            rules.append(rule)
    if not rule_files:
        problems.append(Problem("(settings)", None, "no rule files given"))
    added, exception_problems = load_exceptions(exception_files, {r.id: r for r in rules}, known, broken)
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
    files = [*settings.rules_files, *settings.exceptions_files, settings.catalog_file, settings.rates_file]
    return files + ([settings.nomenclature_file] if settings.nomenclature_file is not None else [])


def load_from_settings(settings: Settings) -> RuleSet:
    return load_ruleset(
        settings.rules_files,
        settings.catalog_file,
        settings.rates_file,
        settings.exceptions_files,
        settings.nomenclature_file,
    )
