"""``tradewatch rules ...``: check rule files without running the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.clitools import load_settings
from services.yamlfile import ConfigError

app = typer.Typer(help="Check and test rule files.", no_args_is_help=True)


@app.command("check")
def check(
    files: Annotated[
        list[Path] | None, typer.Argument(help="rule files; default: the configured ones")
    ] = None,
) -> None:
    """Validate rule files, the catalog and the rates table; list every problem, exit 1 on any."""
    from services.rules.loader import load_ruleset

    settings = load_settings()
    paths = files or settings.rules_files
    try:
        ruleset = load_ruleset(paths, settings.catalog_file, settings.rates_file)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        typer.echo(f"{len(error.problems)} problem(s)", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {len(ruleset.rules)} rules, rule set version {ruleset.version}")
