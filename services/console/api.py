"""The console as JSON under ``/api``, for teams that script: the same data and steps as the
pages, the same roles, described in ``/api/openapi.json``.

A script logs in with HTTP Basic (a user of the store of record; failed logins are throttled
like the form's) or reuses a browser session with its CSRF token in ``X-CSRF-Token``. Steps are
POSTs with a JSON body (``Content-Type: application/json``): a page on another site cannot
forge one, since a browser sends such a request across sites only after asking.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.console import views
from services.console.gate import Denied, Visitor
from services.console.pages import act, add_silence_from, expire_silence, read_form
from services.store.models import Role
from services.yamlfile import ConfigError

if TYPE_CHECKING:
    from services.console.app import Console

ACTIONS = ("assign", "comment", "close", "approve", "reopen")


class Api:
    def __init__(self, console: Console) -> None:
        self.c = console

    async def who(
        self, request: Request, need: Role = Role.VIEWER, doing: str = "reading the console"
    ) -> Visitor:
        visitor = await self.c.gate.visitor(request, basic=True)
        return await self.c.gate.require(request, visitor, need, doing)

    async def changing(self, request: Request, need: Role, doing: str) -> tuple[Visitor, dict[str, str]]:
        visitor = await self.c.gate.visitor(request, basic=True)
        if visitor is None:
            raise Denied(401, "log in first (HTTP Basic, or a session cookie with X-CSRF-Token)")
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise Denied(415, "send the step as JSON (Content-Type: application/json)")
        form = await read_form(request)
        visitor = await self.c.gate.require(request, visitor, need, doing, changing=True)
        return visitor, form

    async def cases(self, request: Request) -> Response:
        visitor = await self.who(request)
        found = await self.c.casework.page(visitor.name, views.inbox_filter(dict(request.query_params)))
        return JSONResponse(views.page_dict(found, datetime.now(UTC)))

    async def case(self, request: Request) -> Response:
        visitor = await self.who(request)
        view = await views.case_view(self.c, visitor.name, int(request.path_params["case_id"]))
        return JSONResponse(view.as_dict())

    async def step(self, request: Request) -> Response:
        case_id = int(request.path_params["case_id"])
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise Denied(404, f"{action!r} is not a step on a case: {', '.join(ACTIONS)}")
        need = Role.REVIEWER if action == "approve" else Role.ANALYST
        visitor, form = await self.changing(request, need, f"{action} on case {case_id}")
        done = await act(self.c, visitor, case_id, action, form)
        detail = await self.c.casework.show(visitor.name, case_id)
        return JSONResponse({"done": done, "case": detail.summary.as_dict()})

    async def silences(self, request: Request) -> Response:
        await self.who(request)
        rows = await views.silences(self.c, request.query_params.get("all") in ("1", "true"))
        return JSONResponse({"silences": rows})

    async def silence_add(self, request: Request) -> Response:
        visitor, form = await self.changing(request, Role.REVIEWER, "adding a silence")
        try:
            silence, note = await add_silence_from(self.c, visitor, form)
        except (ValueError, ConfigError) as error:
            return JSONResponse({"error": str(error)}, 400)
        return JSONResponse({"id": silence.id, "note": note, "silence": silence.model_dump(mode="json")}, 201)

    async def silence_expire(self, request: Request) -> Response:
        visitor, _ = await self.changing(request, Role.REVIEWER, "expiring a silence")
        ended = await expire_silence(self.c, visitor.name, request.path_params["silence_id"])
        if ended is None:
            return JSONResponse({"error": f"there is no silence {request.path_params['silence_id']!r}"}, 404)
        return JSONResponse({"expired": ended.id})

    async def rules(self, request: Request) -> Response:
        visitor = await self.who(request)
        rows, live_from, problems = await views.rule_rows(self.c, visitor.name)
        return JSONResponse({"rules": [r.as_dict() for r in rows], "live": live_from, "problems": problems})

    async def backtest(self, request: Request) -> Response:
        _, form = await self.changing(request, Role.ADMIN, "running a backtest")
        try:
            result = await views.run_backtest(
                self.c, form.get("rules", ""), form.get("since"), form.get("until")
            )
        except ConfigError as error:
            return JSONResponse(
                {"error": "the rule file has errors", "problems": [str(p) for p in error.problems]}, 400
            )
        except views.Busy as busy:
            return JSONResponse({"error": str(busy)}, 409)
        return JSONResponse(result.as_dict())

    async def dashboard(self, request: Request) -> Response:
        visitor = await self.who(request)
        data = await views.dashboard(self.c, visitor.name)
        return JSONResponse(
            {
                "weeks": data["weeks"],
                "by_crossing": data["by_crossing"].as_dict(),
                "by_category": data["by_category"].as_dict(),
                "rules_last_90_days": [s.as_dict() for s in data["rules"]],
                "flows_last_12_months": data["flows"].as_dict(),
            }
        )

    async def spec(self, request: Request) -> Response:
        return JSONResponse(openapi())


def routes(console: Console) -> list[Route]:
    a = Api(console)
    return [
        Route("/openapi.json", a.spec),
        Route("/cases", a.cases),
        Route("/cases/{case_id:int}", a.case),
        Route("/cases/{case_id:int}/{action}", a.step, methods=["POST"]),
        Route("/silences", a.silences),
        Route("/silences", a.silence_add, methods=["POST"]),
        Route("/silences/{silence_id}/expire", a.silence_expire, methods=["POST"]),
        Route("/rules", a.rules),
        Route("/rules/backtest", a.backtest, methods=["POST"]),
        Route("/dashboard", a.dashboard),
    ]


def _param(
    name: str, description: str, where: str = "query", schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _op(
    summary: str,
    role: str,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    ok: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Needs the {role} role or above.",
        "parameters": params or [],
        "responses": {
            ok: {"description": "done", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"description": "bad input: `error` says what and why"},
            "401": {"description": "not logged in"},
            "403": {"description": "the role is too low, or the CSRF token is missing"},
            "404": {"description": "no such case or silence"},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def openapi() -> dict[str, Any]:
    """The API's description (OpenAPI 3.1)."""
    case_id = _param("case_id", "the case's number", "path", {"type": "integer"})
    text = {"type": "string"}
    filters = [
        _param("state", "comma-separated: open, in_review, awaiting_approval, closed"),
        _param("severity", "comma-separated: info, low, medium, high, critical"),
        _param("crossing", "a crossing's name"),
        _param("category", "a catalog category id (machine-tools)"),
        _param("rule", "a rule id"),
        _param("assignee", "a user name, or none"),
        _param("from", "opened on or after this day (YYYY-MM-DD)"),
        _param("to", "opened on or before this day (YYYY-MM-DD)"),
        _param("sort", "urgency (default), due, opened, updated, severity"),
        _param("page", "from 1", schema={"type": "integer", "minimum": 1}),
        _param("size", f"cases a page, 1 to {views.MAX_PAGE_SIZE}", schema={"type": "integer"}),
    ]
    steps = {
        "assign": {
            "type": "object",
            "properties": {"assignee": {**text, "description": "a user, me, or none"}},
        },
        "comment": {"type": "object", "required": ["text"], "properties": {"text": text}},
        "close": {
            "type": "object",
            "required": ["outcome", "reason"],
            "properties": {
                "outcome": {"enum": ["violation", "false_positive", "not_relevant", "escalated", "reported"]},
                "reason": text,
            },
        },
        "approve": {"type": "object", "properties": {"note": text}},
        "reopen": {"type": "object", "required": ["reason"], "properties": {"reason": text}},
    }
    paths: dict[str, Any] = {
        "/api/cases": {
            "get": _op("The inbox: cases filtered, sorted and paged, with counts by state", "viewer", filters)
        },
        "/api/cases/{case_id}": {
            "get": _op(
                "A case: findings, items, parties beside their listed entries, history", "viewer", [case_id]
            )
        },
        "/api/silences": {
            "get": _op(
                "Silences in force (all=1: also the ended ones)", "viewer", [_param("all", "1 for all")]
            ),
            "post": _op(
                "Add a silence (checked as `tradewatch silence add` checks it)",
                "reviewer",
                body={
                    "type": "object",
                    "required": ["match", "duration", "reason"],
                    "properties": {
                        "match": {**text, "description": "KEY=VALUE lines"},
                        "duration": {**text, "description": "2h, 7d"},
                        "reason": text,
                    },
                },
                ok="201",
            ),
        },
        "/api/silences/{silence_id}/expire": {
            "post": _op(
                "End a silence now",
                "reviewer",
                [_param("silence_id", "the silence's id", "path")],
                body={"type": "object"},
            )
        },
        "/api/rules": {"get": _op("The rules, their legal basis and their last 30 days", "viewer")},
        "/api/rules/backtest": {
            "post": _op(
                "Replay the archived reports through the live rules and a proposed rule file: what would "
                "appear, disappear or change severity (one backtest at a time: 409 while one runs)",
                "admin",
                body={
                    "type": "object",
                    "required": ["rules"],
                    "properties": {
                        "rules": {**text, "description": "the proposed rule file (YAML)"},
                        "since": {**text, "description": "first day of event time (YYYY-MM-DD)"},
                        "until": {**text, "description": "last day of event time (YYYY-MM-DD)"},
                    },
                },
            )
        },
        "/api/dashboard": {
            "get": _op("Cases per week by crossing and category; false positives per rule", "viewer")
        },
    }
    for action, schema in steps.items():
        role = "reviewer" if action == "approve" else "analyst"
        paths[f"/api/cases/{{case_id}}/{action}"] = {
            "post": _op(f"{action.capitalize()} a case", role, [case_id], body=schema)
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tradewatch console",
            "version": "1",
            "description": "Cases, silences, rules and figures of the store of record.",
        },
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "tw_session",
                    "description": "a browser session; steps also need its token in X-CSRF-Token",
                },
            }
        },
        "security": [{"basic": []}, {"session": []}],
        "paths": paths,
    }
