"""The console's pages: login, inbox, case, silences, rules, dashboard.

Plain HTML forms that work without scripts; htmx only refreshes the inbox as its filters change.
A change is a POST carrying the session's CSRF token, answered by a redirect to the page it was
made on (so a reload never repeats it), with what happened said at the top of that page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.casework import users
from services.casework.access import AccessRefused, Missing, Refused
from services.console import charts, views
from services.console.gate import CSRF_FIELD, Denied, Visitor
from services.console.security import (
    LOGIN_COOKIE,
    LOGIN_FORM_SECONDS,
    SESSION_COOKIE,
    login_form,
    login_token,
    new_session,
    same_token,
)
from services.notify.silences import SilenceStore
from services.notify.silencing import add_silence
from services.store.models import Role
from services.yamlfile import ConfigError

if TYPE_CHECKING:
    from services.console.app import Console

Handler = Callable[[Request], Awaitable[Response]]
MAX_FORM_BYTES = 256 * 1024
"""Larger form posts are refused before they are read (a comment's own limit is lower)."""


async def read_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """A posted form (or JSON object) as text fields, read no further than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Denied(413, f"the request is larger than the {limit // 1024} KiB the console accepts")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Denied(413, f"the request is larger than the {limit // 1024} KiB the console accepts")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Denied(400, "the request is not UTF-8 text") from None
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(text or "{}")
        except ValueError as error:
            raise Denied(400, f"the request body is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise Denied(400, "the request body is a JSON object of fields")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items() if v is not None}
    return dict(parse_qsl(text, keep_blank_values=True))


def _local(target: str | None) -> str:
    """Only a path on this console is a place to go back to (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _back(path: str, **said: str) -> RedirectResponse:
    joined = "&" if "?" in path else "?"
    return RedirectResponse(path + (joined + urlencode(said) if said else ""), status_code=303)


class Pages:
    def __init__(self, console: Console) -> None:
        self.c = console

    def render(
        self, request: Request, name: str, visitor: Visitor | None, status: int = 200, **context: Any
    ) -> Response:
        context.setdefault("done", request.query_params.get("done"))
        context.setdefault("error", request.query_params.get("error"))
        return self.c.templates.TemplateResponse(
            request,
            name,
            {"visitor": visitor, "csrf_field": CSRF_FIELD, "problems": self.c.problems, **context},
            status_code=status,
        )

    async def who(
        self, request: Request, need: Role = Role.VIEWER, doing: str = "reading the console"
    ) -> Visitor:
        visitor = await self.c.gate.visitor(request)
        visitor = await self.c.gate.require(request, visitor, need, doing)
        if visitor.must_change_password and request.url.path != "/password":
            raise _Redirect("/password")
        return visitor

    async def changing(self, request: Request, need: Role, doing: str) -> tuple[Visitor, dict[str, str]]:
        """The visitor and the form of a state-changing request, once its CSRF token is checked."""
        visitor = await self.c.gate.visitor(request)
        if visitor is None:
            raise Denied(401, "log in first")
        form = await read_form(request)
        visitor = await self.c.gate.require(
            request, visitor, need, doing, changing=True, form_token=form.get(CSRF_FIELD)
        )
        return visitor, form

    # --- login

    async def login_page(self, request: Request, status: int = 200, error: str | None = None) -> Response:
        token, csrf = login_form(self.c.gate.signer)
        response = self.render(
            request,
            "login.html",
            None,
            status=status,
            login_csrf=csrf,
            next=_local(request.query_params.get("next")),
            error=error,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=int(LOGIN_FORM_SECONDS),
            httponly=True,
            samesite="strict",
            secure=self.c.settings.console_secure_cookies,
        )
        return response

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return await self.login_page(request)
        form = await read_form(request)
        bound = login_token(self.c.gate.signer, request.cookies.get(LOGIN_COOKIE))
        if bound is None or not same_token(form.get(CSRF_FIELD), bound):
            await self.c.gate.refuse(
                request,
                form.get("name") or "anonymous",
                "logging in",
                "the login form carries no valid CSRF token",
            )
            return await self.login_page(request, 403, "The login form had expired; try again.")
        name = form.get("name", "").strip()
        try:
            user = await self.c.gate.check_password(request, name, form.get("password", ""))
        except Denied as denied:
            response = await self.login_page(request, denied.status, denied.message)
            if denied.retry_after:
                response.headers["Retry-After"] = str(int(denied.retry_after) + 1)
            return response
        token, _ = new_session(self.c.gate.signer, user.name, self.c.settings.console_session)
        target = "/password" if user.must_change_password else _local(form.get("next"))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(self.c.settings.console_session),
            httponly=True,
            samesite="lax",
            secure=self.c.settings.console_secure_cookies,
        )
        response.delete_cookie(LOGIN_COOKIE)
        return response

    async def logout(self, request: Request) -> Response:
        visitor, _ = await self.changing(request, Role.VIEWER, "logging out")
        await self.c.gate.revoke(visitor)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def password(self, request: Request) -> Response:
        if request.method == "GET":
            visitor = await self.who(request)
            return self.render(request, "password.html", visitor)
        visitor, form = await self.changing(request, Role.VIEWER, "setting one's password")
        if form.get("password") != form.get("again"):
            return self.render(request, "password.html", visitor, 400, error="The two passwords differ.")
        try:
            await users.set_password(self.c.store, visitor.name, visitor.name, form.get("password", ""))
        except (Refused, ValueError) as error:
            return self.render(request, "password.html", visitor, 400, error=str(error))
        return _back("/", done="Your password is set.")

    # --- cases

    async def inbox(self, request: Request) -> Response:
        visitor = await self.who(request)
        query = dict(request.query_params)
        status, error, found = 200, None, None
        try:
            wanted = views.inbox_filter(query)
            found = await self.c.casework.page(visitor.name, wanted)
        except Refused as refused:
            status, error = 400, str(refused)
        options = await self._inbox_options(visitor)
        size = found.limit if found else views.PAGE_SIZE
        page = found.offset // size + 1 if found else 1
        kept = {k: v for k, v in query.items() if k in (*views.FILTER_KEYS, "size") and v}
        template = "inbox_results.html" if request.headers.get("hx-request") else "inbox.html"
        return self.render(
            request,
            template,
            visitor,
            status,
            error=error or request.query_params.get("error"),
            found=found,
            query=query,
            options=options,
            page=page,
            size=size,
            now=datetime.now(UTC),
            link=lambda **change: "/?" + urlencode({k: v for k, v in {**kept, **change}.items() if v}),
        )

    async def _inbox_options(self, visitor: Visitor) -> dict[str, list[tuple[str, str]]]:
        catalog = self.c.catalog
        crossings = sorted(catalog.file.crossings) if catalog else []
        categories = sorted(catalog.file.categories.items()) if catalog else []
        rules = [r.id for r, _ in self.c.rule_files.read()[0]]
        people = [u.name for u in await users.list_users(self.c.store, visitor.name) if u.role != "viewer"]
        return {
            "crossing": [(c, c) for c in crossings],
            "category": [(c, t) for c, t in categories],
            "rule": [(r, r) for r in sorted(set(rules))],
            "assignee": [("none", "nobody"), *((p, p) for p in people)],
        }

    async def case(self, request: Request) -> Response:
        visitor = await self.who(request)
        case_id = int(request.path_params["case_id"])
        view = await views.case_view(self.c, visitor.name, case_id)
        people = [
            u
            for u in await users.list_users(self.c.store, visitor.name)
            if not u.disabled and u.role != "viewer"
        ]
        return self.render(
            request,
            "case.html",
            visitor,
            view=view,
            detail=view.detail,
            case=view.detail.case,
            people=people,
            now=datetime.now(UTC),
        )

    async def act(self, request: Request) -> Response:
        case_id = int(request.path_params["case_id"])
        action = request.path_params["action"]
        need = Role.REVIEWER if action == "approve" else Role.ANALYST
        visitor, form = await self.changing(request, need, f"{action} on case {case_id}")
        here = f"/cases/{case_id}"
        try:
            done = await act(self.c, visitor, case_id, action, form)
        except AccessRefused as refused:
            return _back(here, error=str(refused))
        except Missing:
            raise
        except Refused as refused:
            return _back(here, error=str(refused))
        return _back(here, done=done)

    # --- silences, rules, dashboard

    async def silences(self, request: Request) -> Response:
        visitor = await self.who(request)
        everything = request.query_params.get("all") == "1"
        rows = await views.silences(self.c, everything)
        return self.render(request, "silences.html", visitor, rows=rows, everything=everything)

    async def silence_add(self, request: Request) -> Response:
        visitor, form = await self.changing(request, Role.REVIEWER, "adding a silence")
        try:
            silence, note = await add_silence_from(self.c, visitor, form)
        except (ValueError, ConfigError) as error:
            rows = await views.silences(self.c, False)
            return self.render(
                request,
                "silences.html",
                visitor,
                400,
                rows=rows,
                everything=False,
                error=str(error),
                form=form,
            )
        return _back("/silences", done=f"Silence {silence.id} added." + (f" Note: {note}" if note else ""))

    async def silence_expire(self, request: Request) -> Response:
        visitor, _ = await self.changing(request, Role.REVIEWER, "expiring a silence")
        silence_id = request.path_params["silence_id"]
        ended = await expire_silence(self.c, visitor.name, silence_id)
        if ended is None:
            return _back("/silences", error=f"There is no silence {silence_id}.")
        return _back("/silences", done=f"Silence {silence_id} expired: matching alerts are sent again.")

    async def rules(self, request: Request) -> Response:
        visitor = await self.who(request)
        rows, live_from, problems = await views.rule_rows(self.c, visitor.name)
        return self.render(
            request, "rules.html", visitor, rows=rows, live_from=live_from, rule_problems=problems
        )

    async def backtest(self, request: Request) -> Response:
        visitor, form = await self.changing(request, Role.ADMIN, "running a backtest")
        rows, live_from, problems = await views.rule_rows(self.c, visitor.name)
        page = {"rows": rows, "live_from": live_from, "rule_problems": problems, "form": form}
        try:
            result = await views.run_backtest(self.c, form.get("rules", ""), form.get("from"), form.get("to"))
        except ConfigError as error:
            return self.render(
                request, "rules.html", visitor, 400, rule_errors=[str(p) for p in error.problems], **page
            )
        except views.Busy as busy:
            return self.render(request, "rules.html", visitor, 409, error=str(busy), **page)
        except Refused as refused:
            return self.render(request, "rules.html", visitor, 400, error=str(refused), **page)
        return self.render(request, "backtest.html", visitor, result=result)

    async def dashboard(self, request: Request) -> Response:
        visitor = await self.who(request)
        data = await views.dashboard(self.c, visitor.name)
        weekly = [w.strftime("%d %b") for w in data["by_crossing"].weeks]
        fp_rows = [
            (
                s.rule_id,
                s.false_positive_share,
                f"{s.false_positives} of {s.closed} closed" if s.closed else "none closed",
            )
            for s in data["rules"]
            if s.cases
        ]
        return self.render(
            request,
            "dashboard.html",
            visitor,
            data=data,
            crossing_chart=charts.stacked_bars(
                weekly, data["by_crossing"].series, "Cases opened per week by crossing"
            ),
            category_chart=charts.stacked_bars(
                weekly, data["by_category"].series, "Cases opened per week by category"
            ),
            flows_chart=charts.stacked_bars(
                [m[2:] for m in data["flows"].months],
                data["flows"].series,
                "Archived reports per month by HS chapter",
                marked=data["flows"].marked,
            ),
            fp_chart=charts.share_bars(fp_rows, "Share of closed cases that were false positives, per rule"),
        )

    async def api_docs(self, request: Request) -> Response:
        visitor = await self.who(request)
        from services.console.api import openapi

        return self.render(request, "api.html", visitor, spec=openapi())


class _Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


async def act(console: Console, visitor: Visitor, case_id: int, action: str, form: dict[str, str]) -> str:
    """One step on a case, for the pages and the JSON endpoints: what was done, in a sentence."""
    work = console.casework
    if action == "assign":
        assignee = form.get("assignee", "").strip()
        target = visitor.name if assignee == "me" else (assignee or None)
        await work.assign(visitor.name, case_id, None if target in (None, "none", "nobody") else target)
        return (
            f"Case {case_id} is now with {target}."
            if target not in (None, "none", "nobody")
            else f"Case {case_id} is with nobody now."
        )
    if action == "comment":
        await work.comment(visitor.name, case_id, form.get("text", ""))
        return "Comment added."
    if action == "close":
        summary = await work.close(visitor.name, case_id, form.get("outcome"), form.get("reason"))
        if summary.state.value == "awaiting_approval":
            return f"Case {case_id} is closed as {summary.outcome.label if summary.outcome else ''} and waits for a second reviewer's approval."
        return f"Case {case_id} is closed."
    if action == "approve":
        await work.approve(visitor.name, case_id, form.get("note"))
        return f"Case {case_id}'s close is approved."
    if action == "reopen":
        await work.reopen(visitor.name, case_id, form.get("reason"))
        return f"Case {case_id} is reopened."
    raise Refused(f"{action!r} is not a step on a case: assign, comment, close, approve or reopen")


async def audit_silence(console: Console, actor: str, action: str, silence: Any, before: Any = None) -> None:
    from services.store import audit

    async with console.store.writing() as session:
        after = silence.audited()
        await audit.append(
            session,
            actor,
            action,
            "silence",
            silence.id,
            before=before.audited() if before else None,
            after=after,
        )


async def add_silence_from(
    console: Console, visitor: Visitor, form: dict[str, str]
) -> tuple[Any, str | None]:
    """A silence from a form or a JSON body: matchers as KEY=VALUE lines (or a JSON list), checked,
    stored and audited; ValueError or ConfigError saying what is wrong."""
    raw = form.get("match", "")
    given = json.loads(raw) if raw.lstrip().startswith("[") else raw.replace(";", "\n").splitlines()
    match = [str(m).strip() for m in given if str(m).strip()]
    silence, note = await add_silence(
        console.redis, console.settings, match, form.get("duration", ""), visitor.name, form.get("reason", "")
    )
    await audit_silence(console, visitor.name, "silence.added", silence)
    return silence, note


async def expire_silence(console: Console, actor: str, silence_id: str) -> Any:
    store = SilenceStore(console.redis, console.settings.streams.notify_namespace)
    before = next((s for s in await store.all() if s.id == silence_id), None)
    ended = await store.expire(silence_id, time.time())
    if before is None or ended is None:
        return None
    await audit_silence(console, actor, "silence.expired", ended, before)
    return ended


def routes(console: Console) -> list[Route]:
    p = Pages(console)
    return [
        Route("/", p.inbox),
        Route("/login", p.login, methods=["GET", "POST"]),
        Route("/logout", p.logout, methods=["POST"]),
        Route("/password", p.password, methods=["GET", "POST"]),
        Route("/cases/{case_id:int}", p.case),
        Route("/cases/{case_id:int}/{action}", p.act, methods=["POST"]),
        Route("/silences", p.silences),
        Route("/silences", p.silence_add, methods=["POST"]),
        Route("/silences/{silence_id}/expire", p.silence_expire, methods=["POST"]),
        Route("/rules", p.rules),
        Route("/rules/backtest", p.backtest, methods=["POST"]),
        Route("/dashboard", p.dashboard),
        Route("/api/", p.api_docs),
        Route("/healthz", lambda _: JSONResponse({"ok": True})),
    ]


def exception_handlers(console: Console) -> dict[Any, Any]:
    p = Pages(console)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/") and request.url.path != "/api/"

    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Denied)
        headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else None
        if wants_json(request):
            return JSONResponse({"error": exc.message}, exc.status, headers=headers)
        if exc.status == 401 and request.method == "GET":
            response: Response = RedirectResponse("/login?next=" + quote(request.url.path), status_code=303)
            if exc.message != "log in first":
                response.delete_cookie(SESSION_COOKIE)
            return response
        return p.render(request, "error.html", None, exc.status, title="Refused", message=exc.message)

    async def missing(request: Request, exc: Exception) -> Response:
        if wants_json(request):
            return JSONResponse({"error": str(exc)}, 404)
        return p.render(request, "error.html", None, 404, title="Not found", message=str(exc))

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: "There is no such page.", 405: "This page does not take that kind of request."}.get(
            exc.status_code, exc.detail
        )
        if wants_json(request):
            return JSONResponse({"error": message}, exc.status_code)
        return p.render(
            request, "error.html", None, exc.status_code, title=f"Error {exc.status_code}", message=message
        )

    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Redirect)
        return RedirectResponse(exc.to, status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        status = 403 if isinstance(exc, AccessRefused) else 400
        if wants_json(request):
            return JSONResponse({"error": str(exc)}, status)
        return p.render(request, "error.html", None, status, title="Refused", message=str(exc))

    return {Denied: denied, Missing: missing, HTTPException: http, _Redirect: redirect, Refused: refused}
