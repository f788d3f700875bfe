"""What every ``tradewatch`` subcommand shares: settings loaded once, failures said plainly."""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError

from services.logging import configure as configure_logging
from services.redact import redact
from services.settings import Settings


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as error:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        fail("settings are not valid:\n" + "\n".join(lines))
    configure_logging(settings.log_level, settings.log_format)
    return settings


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``tradewatch: message`` (secrets masked) to stderr and exit with ``code``."""
    typer.echo(f"tradewatch: {redact(message)}", err=True)
    raise typer.Exit(code)
