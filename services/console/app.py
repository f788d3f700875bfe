"""The compliance console: one Starlette application, pages for people and JSON for scripts.

What it is made of, in the order a request meets it:

- ``security.py``: signed session cookies, CSRF tokens, login throttling, trusted proxies;
- ``gate.py``: who is asking and whether they may (every refusal logged and audited);
- ``pages.py``: the HTML pages (inbox, case, silences, rules, dashboard, login);
- ``api.py``: the same as JSON under ``/api``, described in ``/api/openapi.json``;
- ``templates/`` and ``static/`` (the style sheet, htmx and a few keyboard shortcuts, all served
  from the package: nothing is loaded from outside, so it works air-gapped).

Served by ``tradewatch console`` (and by ``tradewatch up``) on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from services.casework.workflow import Casework
from services.console.gate import Gate
from services.console.parties import ListedEntries
from services.console.security import Signer, signing_key
from services.console.views import RuleFileCache
from services.goods.catalog import Catalog, load_catalog
from services.goods.hscodes import Nomenclature, load_nomenclature
from services.logging import get_logger
from services.money import Rates, load_rates
from services.settings import Settings
from services.store import Store
from services.yamlfile import ConfigError

HERE = Path(__file__).parent
log = get_logger(component="console")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


@dataclass
class Console:
    """What every request handler shares."""

    settings: Settings
    store: Store
    redis: aredis.Redis
    gate: Gate
    casework: Casework
    templates: Jinja2Templates
    entries: ListedEntries
    rule_files: RuleFileCache
    catalog: Catalog | None = None
    nomenclature: Nomenclature | None = None
    rates: Rates | None = None
    problems: list[str] = field(default_factory=list)
    """Configuration the console could not load (shown to admins, logged)."""
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    backtesting: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a backtest runs: one at a time (it takes both cores)."""
    """Figures kept for a while: key -> (until when, value)."""


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.trim_blocks = True
    env.lstrip_blocks = True
    from services.console import views

    env.filters.update(views.FILTERS)
    env.globals.update(views.GLOBALS)
    return templates


def build_console(settings: Settings, store: Store, redis: aredis.Redis) -> Console:
    problems: list[str] = []
    catalog = nomenclature = rates = None
    try:
        catalog = load_catalog(settings.catalog_file)
    except ConfigError as error:
        problems.append(f"the catalog has errors, so crossings and categories are not offered: {error}")
    try:
        rates = load_rates(settings.rates_file)
    except ConfigError as error:
        problems.append(f"the rates table has errors, so the dashboard shows no flows: {error}")
    if settings.nomenclature_file is not None:
        try:
            nomenclature = load_nomenclature(settings.nomenclature_file)
        except ConfigError as error:
            problems.append(f"the nomenclature could not be read, so HS headings show no text: {error}")
    for problem in problems:
        log.warning("console configuration", problem=problem)
    return Console(
        settings=settings,
        store=store,
        redis=redis,
        gate=Gate(settings, store, Signer(signing_key(settings)), redis),
        casework=Casework.from_settings(settings, store),
        templates=_templates(),
        entries=ListedEntries(redis, settings),
        rule_files=RuleFileCache(settings.rules_files),
        catalog=catalog,
        nomenclature=nomenclature,
        rates=rates,
        problems=problems,
    )


class Headers(BaseHTTPMiddleware):
    """No page is framed, cached or allowed to run anything but our own scripts."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def create_app(console: Console, *, owns: bool = False) -> Starlette:
    """The ASGI application over a console; ``owns``: close its store and Redis client at shutdown."""
    from services.console import api, pages

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        if owns:
            await console.store.dispose()
            await console.redis.aclose()

    routes: list[Any] = [
        *pages.routes(console),
        Mount("/api", routes=api.routes(console)),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Headers)],
        exception_handlers=pages.exception_handlers(console),
        lifespan=lifespan,
    )
    app.state.console = console
    return app


__all__ = ["Console", "build_console", "create_app"]
