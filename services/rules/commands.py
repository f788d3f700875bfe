"""``tradewatch rules ...``: check rule files and try them on reports without running the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from services.clitools import load_settings
from services.yamlfile import ConfigError

app = typer.Typer(help="Check and test rule files.", no_args_is_help=True)


def _problems(error: ConfigError) -> None:
    typer.echo(str(error), err=True)
    typer.echo(f"{len(error.problems)} problem(s)", err=True)


@app.command("check")
def check(
    files: Annotated[
        list[Path] | None, typer.Argument(help="rule files; default: the configured ones")
    ] = None,
    nomenclature: Annotated[
        Path | None,
        typer.Option(
            "--nomenclature",
            help="the HS nomenclature as CSV (hscode, description), e.g. hs2022.csv: every HS code must "
            "exist in it; default: TRADEWATCH_NOMENCLATURE_FILE, else only the chapter is checked",
        ),
    ] = None,
) -> None:
    """Validate rule files, exception files, the catalog and the rates table; list every problem, exit 1 on any.

    Values that could never match are problems too: unknown crossings, countries, categories,
    HS codes and currencies, unknown keys and exceptions for rules that do not exist.
    """
    from services.rules.loader import load_ruleset

    settings = load_settings()
    paths = files or settings.rules_files
    try:
        ruleset = load_ruleset(
            paths,
            settings.catalog_file,
            settings.rates_file,
            settings.exceptions_files,
            nomenclature or settings.nomenclature_file,
        )
    except ConfigError as error:
        _problems(error)
        raise typer.Exit(1) from None
    hs = (
        f"HS codes checked against {nomenclature or settings.nomenclature_file}"
        if (nomenclature or settings.nomenclature_file)
        else "HS codes checked by chapter (give --nomenclature to check every code)"
    )
    typer.echo(f"ok: {len(ruleset.rules)} rules, rule set version {ruleset.version}; {hs}")


@app.command("test")
def try_reports(
    reports: Annotated[Path, typer.Argument(help="a JSONL file of reports")],
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", help="rule file (repeat for several); default: the configured ones"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per report")] = False,
    expect: Annotated[
        Path | None,
        typer.Option("--expect", help="golden JSONL (as --json prints it); exit 1 on any difference"),
    ] = None,
    now: Annotated[
        datetime | None, typer.Option(help="time for reports without reported_at; default: the current time")
    ] = None,
) -> None:
    """Run reports through the production engine: the alerts that would fire and why."""
    from services.rules import trial
    from services.rules.loader import load_ruleset

    settings = load_settings()
    try:
        ruleset = load_ruleset(
            rules or settings.rules_files,
            settings.catalog_file,
            settings.rates_file,
            settings.exceptions_files,
            settings.nomenclature_file,
        )
        parsed = trial.read_reports(reports)
        expected = trial.read_expected(expect) if expect is not None else None
    except ConfigError as error:
        _problems(error)
        raise typer.Exit(2) from None
    at = now or datetime.now(UTC)
    outcomes = trial.run(
        parsed, ruleset, at if at.tzinfo else at.replace(tzinfo=UTC), horizon=settings.backfill_horizon
    )
    lines = [o.line() for o in outcomes]
    if as_json:
        typer.echo(trial.dump(lines), nl=False)
    else:
        typer.echo("\n\n".join(trial.render(o) for o in outcomes))
    if expected is not None:
        found = trial.differences(lines, expected)
        if found:
            typer.echo(f"{len(found)} difference(s) from {expect}:", err=True)
            for line in found:
                typer.echo(f"  {line}", err=True)
            raise typer.Exit(1)
        typer.echo(f"as expected: {len(lines)} report(s) match {expect}", err=True)
