"""The console over HTTP, against a real store (SQLite and PostgreSQL) and a real Redis: logins,
sessions, CSRF, roles, throttling, the single sign-on header, bad input, the JSON API; every
refusal in the audit trail. (The browser tests in tests/flow/test_console_browser.py walk the
same console as a person does.)"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from schemas.report import ImportReport
from services.casework import users
from services.casework.records import record_alerts
from services.console.app import Console, build_console, create_app
from services.console.security import SESSION_COOKIE, Signer
from services.runtime import Context
from services.settings import DEFAULT_CASE_DUE, Settings
from services.store import Store
from services.store.models import AuditEntry
from tests.dbfixtures import sample_alerts
from tests.helpers import ROOT, RULES_FILE, make_report
from tests.history import fill

PASSWORD = "a long enough password"
PEOPLE = [
    ("alice", "analyst"),
    ("andy", "analyst"),
    ("rita", "reviewer"),
    ("rob", "reviewer"),
    ("vera", "viewer"),
]
SHIPYARD = "sample-2026-03-rason-shipyard"  # critical


@pytest.fixture
async def console(store: Store, settings: Settings, ctx: Context) -> Console:
    await users.bootstrap_admin(store)
    await users.set_password(store, "admin", "admin", PASSWORD)
    for name, role in PEOPLE:
        await users.add_user(store, "admin", name, role, PASSWORD)
    async with store.writing() as session:
        await record_alerts(
            session, [a for group in sample_alerts().values() for a in group], DEFAULT_CASE_DUE
        )
    tuned = settings.model_copy(
        update={
            "console_trusted_header": "X-Forwarded-User",
            "console_trusted_proxies": ["10.0.0.0/8"],
            "console_login_attempts": 3,
        }
    )
    return build_console(tuned, store, ctx.redis)


class Visit:
    """One browser's worth of cookies against the console, from one address."""

    def __init__(self, console: Console, address: str = "127.0.0.1") -> None:
        transport = httpx.ASGITransport(app=create_app(console), client=(address, 40000))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://console.test")
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        r = await self.http.get(path, **kw)
        if found := re.search(r'data-csrf="([^"]+)"', r.text):
            self.csrf = found.group(1)
        return r

    async def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        page = await self.http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        r = await self.http.post("/login", data={"csrf": token.group(1), "name": name, "password": password})
        if r.status_code == 303:
            await self.get("/")
        return r

    async def post(self, path: str, data: dict[str, str], csrf: bool = True) -> httpx.Response:
        return await self.http.post(path, data={**data, **({"csrf": self.csrf} if csrf else {})})


@pytest.fixture
async def visit(console: Console) -> AsyncIterator[Any]:
    made: list[Visit] = []

    def make(address: str = "127.0.0.1") -> Visit:
        made.append(Visit(console, address))
        return made[-1]

    yield make
    for v in made:
        await v.http.aclose()


async def case_id(console: Console, report_id: str) -> int:
    return next(c.id for c in await console.casework.list("admin") if c.report_id == report_id)


async def refusals(store: Store) -> list[dict[str, Any]]:
    async with store.reading() as session:
        rows = (await session.scalars(select(AuditEntry).where(AuditEntry.action.like("%refused")))).all()
    return [{"actor": r.actor, "action": r.action, "after": r.after} for r in rows]


async def test_a_login_opens_a_signed_httponly_expiring_session(console: Console, visit: Any) -> None:
    v = visit()
    first = await v.http.get("/", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=/"
    r = await v.login("alice")
    assert r.status_code == 303
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert f"Max-Age={int(console.settings.console_session)}" in cookie
    inbox = await v.get("/")
    assert inbox.status_code == 200
    assert "alice" in inbox.text
    assert "default-src 'self'" in inbox.headers["content-security-policy"]
    assert len(re.findall(r'<tr class="sev-', inbox.text)) == len(sample_alerts())
    wrong = await visit().login("alice", "not the password at all")
    assert wrong.status_code == 401
    assert "unknown user or wrong password" in wrong.text
    kept = v.http.cookies[SESSION_COOKIE]
    out = await v.post("/logout", {})
    assert out.status_code == 303
    assert (await v.http.get("/", follow_redirects=False)).status_code == 303
    v.http.cookies.set(SESSION_COOKIE, kept)  # a copy of the cookie kept after logging out
    assert (await v.http.get("/", follow_redirects=False)).status_code == 303


async def test_a_one_time_password_is_changed_at_the_first_login(
    console: Console, visit: Any, store: Store
) -> None:
    await users.set_password(store, "admin", "andy", "handed over on paper")  # an admin's: one-time
    v = visit()
    r = await v.login("andy", "handed over on paper")
    assert r.headers["location"] == "/password"
    assert (await v.http.get("/", follow_redirects=False)).headers["location"] == "/password"
    assert "choose your own" in (await v.get("/password")).text
    differ = await v.post("/password", {"password": "my own new password", "again": "my own new passwrd"})
    assert differ.status_code == 400
    assert "differ" in differ.text
    short = await v.post("/password", {"password": "short", "again": "short"})
    assert short.status_code == 400
    done = await v.post("/password", {"password": "my own new password", "again": "my own new password"})
    assert done.status_code == 303
    assert (await v.get("/")).status_code == 200
    assert (await visit().login("andy", "my own new password")).status_code == 303


async def test_forged_and_expired_cookies_open_nothing(console: Console, visit: Any, store: Store) -> None:
    v = visit()
    await v.login("vera")
    token = v.http.cookies[SESSION_COOKIE]
    body, mac = token.split(".")
    claims = base64.urlsafe_b64decode(body + "==").replace(b'"vera"', b'"admin"')
    forged = base64.urlsafe_b64encode(claims).rstrip(b"=").decode() + "." + mac
    for cookie in (forged, "garbage", Signer(b"k" * 32).sign({"u": "admin", "c": "x"}, 60, "session")):
        v.http.cookies.set(SESSION_COOKIE, cookie)
        r = await v.http.get("/", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")
        api = await v.http.get("/api/cases")
        assert api.status_code == 401
        assert "not one this console signed" in api.json()["error"]
    expired = console.gate.signer.sign({"u": "vera", "c": "x"}, -1, "session")
    v.http.cookies.set(SESSION_COOKIE, expired)
    assert (await v.http.get("/", follow_redirects=False)).status_code == 303
    refused = [r for r in await refusals(store) if "not one this console signed" in r["after"]]
    assert (
        len(refused) == 6
    )  # three forged cookies, each on a page and on the API; the expired one is no refusal


async def test_a_change_without_the_csrf_token_is_refused_and_audited(
    console: Console, visit: Any, store: Store
) -> None:
    v = visit()
    await v.login("alice")
    target = await case_id(console, SHIPYARD)
    r = await v.post(f"/cases/{target}/comment", {"text": "forged"}, csrf=False)
    assert r.status_code == 403
    assert "CSRF" in r.text
    r = await v.http.post(f"/cases/{target}/comment", data={"text": "forged", "csrf": "guess"})
    assert r.status_code == 403
    assert (await console.casework.show("alice", target)).comments == []
    assert sum("CSRF" in x["after"] for x in await refusals(store)) == 2
    ok = await v.post(f"/cases/{target}/comment", {"text": "checked the bill of lading"})
    assert ok.status_code == 303
    assert "done=" in ok.headers["location"]
    assert [c.body for c in (await console.casework.show("alice", target)).comments] == [
        "checked the bill of lading"
    ]


async def test_four_eyes_through_the_pages(console: Console, visit: Any) -> None:
    target = await case_id(console, SHIPYARD)
    alice, rita, vera = visit(), visit(), visit()
    await alice.login("alice")
    r = await alice.post(
        f"/cases/{target}/close", {"outcome": "false_positive", "reason": "the lathes are toys"}
    )
    assert r.status_code == 303
    page = await alice.get(r.headers["location"])
    assert "waits for a second reviewer" in page.text
    assert "Waiting for a second reviewer" in page.text
    assert (await alice.post(f"/cases/{target}/approve", {})).status_code == 403  # an analyst
    await vera.login("vera")
    refused = await vera.post(f"/cases/{target}/reopen", {"reason": "no"})
    assert refused.status_code == 403
    assert "vera is viewer" in refused.text
    await rita.login("rita")
    done = await rita.post(f"/cases/{target}/approve", {"note": "agreed"})
    assert done.status_code == 303
    assert (await console.casework.show("rita", target)).summary.state.value == "closed"


async def test_bad_input_gets_a_clear_refusal_and_harms_nothing(console: Console, visit: Any) -> None:
    v = visit()
    await v.login("alice")
    target = await case_id(console, SHIPYARD)
    long = await v.post(f"/cases/{target}/comment", {"text": "x" * (console.settings.comment_max_chars + 1)})
    assert long.status_code == 303
    assert "at+most" in long.headers["location"]
    huge = await v.post(f"/cases/{target}/comment", {"text": "x" * 300_000})
    assert huge.status_code == 413
    assert "larger than" in huge.text
    script = "<script>alert('x')</script> & <b>bold</b>"
    await v.post(f"/cases/{target}/comment", {"text": script})
    page = await v.get(f"/cases/{target}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;" in page.text
    assert "<script>alert" not in page.text
    for path in ("/cases/999999", "/cases/abc", "/api/cases/999999"):
        missing = await v.get(path)
        assert missing.status_code == 404
    assert "there is no case 999999" in (await v.get("/api/cases/999999")).json()["error"]
    bad = await v.get("/?from=yesterday")
    assert bad.status_code == 400
    assert "&#39;yesterday&#39; is not a date" in bad.text
    unknown_step = await v.post(f"/cases/{target}/delete", {})
    assert unknown_step.status_code == 303
    assert "not+a+step" in unknown_step.headers["location"]
    assert len((await console.casework.show("alice", target)).comments) == 1


async def test_failed_logins_are_throttled(console: Console, visit: Any, store: Store) -> None:
    v = visit()
    for _ in range(console.settings.console_login_attempts):
        assert (await v.login("rob", "wrong password, really")).status_code == 401
    paused = await v.login("rob")  # the right password, too late
    assert paused.status_code == 429
    assert int(paused.headers["retry-after"]) > 0
    assert (await visit("127.0.0.2").login("rob")).status_code == 429  # the name is paused everywhere
    assert (await visit("127.0.0.1").login("rita")).status_code == 429  # and this address for any name
    assert any("too many failed logins" in r["after"] for r in await refusals(store))


async def test_the_sso_header_is_honoured_from_the_proxies_only(
    console: Console, visit: Any, store: Store
) -> None:
    proxy = visit("10.1.2.3")
    page = await proxy.get("/", headers={"X-Forwarded-User": "rita"})
    assert page.status_code == 200
    assert "rita" in page.text
    target = await case_id(console, SHIPYARD)
    done = await proxy.http.post(
        f"/cases/{target}/comment",
        data={"text": "via sso", "csrf": proxy.csrf},
        headers={"X-Forwarded-User": "rita"},
    )
    assert done.status_code == 303
    direct = await visit("192.168.1.9").get("/", headers={"X-Forwarded-User": "admin"})
    assert direct.status_code == 403
    assert "only from the configured proxies" in direct.text
    nobody = await visit("10.1.2.3").get("/", headers={"X-Forwarded-User": "mallory"}, follow_redirects=False)
    assert nobody.status_code == 303
    assert any(r["actor"] == "admin" and "configured proxies" in r["after"] for r in await refusals(store))


async def test_the_json_api_for_scripts(console: Console, visit: Any) -> None:
    v = visit()
    auth = ("alice", PASSWORD)
    listed = await v.http.get("/api/cases", params={"category": "radio-telecom"}, auth=auth)
    assert listed.status_code == 200
    assert sorted(c["report_id"] for c in listed.json()["cases"]) == [
        "sample-2026-03-hyesan-medical-radio",
        "sample-2026-03-ko-ledger",
    ]
    target = await case_id(console, SHIPYARD)
    detail = (await v.http.get(f"/api/cases/{target}", auth=auth)).json()
    assert detail["report_id"] == SHIPYARD
    assert detail["case"]["findings"]
    step = await v.http.post(f"/api/cases/{target}/assign", json={"assignee": "me"}, auth=auth)
    assert step.status_code == 200
    assert step.json()["case"]["assignee"] == "alice"
    form = await v.http.post(f"/api/cases/{target}/comment", data={"text": "x"}, auth=auth)
    assert form.status_code == 415
    viewer = await v.http.post(f"/api/cases/{target}/comment", json={"text": "x"}, auth=("vera", PASSWORD))
    assert viewer.status_code == 403
    assert (await v.http.get("/api/cases", auth=("alice", "wrong password!!"))).status_code == 401
    spec = (await v.http.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    assert "/api/cases/{case_id}/close" in spec["paths"]
    rules = (await v.http.get("/api/rules", auth=auth)).json()["rules"]
    assert all(r["legal_basis"] for r in rules)
    shipyard = next(r for r in rules if r["id"] == "shipyard-equipment")
    assert shipyard["last_30_days"]["cases"] == 2
    dash = (await v.http.get("/api/dashboard", auth=auth)).json()
    assert sum(sum(s) for s in dash["by_crossing"]["series"].values()) == len(sample_alerts())


async def test_silences_with_the_command_lines_checks(console: Console, visit: Any, store: Store) -> None:
    analyst, reviewer = visit(), visit()
    await analyst.login("alice")
    assert (
        await analyst.post("/silences", {"match": "rule_id=radio-telecom", "duration": "2h", "reason": "x"})
    ).status_code == 403
    await reviewer.login("rita")
    wrong = await reviewer.post(
        "/silences", {"match": "rule_id=radio-telecon", "duration": "2h", "reason": "noise"}
    )
    assert wrong.status_code == 400
    assert "would hold nothing" in wrong.text
    assert "radio-telecom" in wrong.text
    ok = await reviewer.post(
        "/silences",
        {"match": "rule_id=radio-telecom\ncrossing=changbai", "duration": "2h", "reason": "a known trial"},
    )
    assert ok.status_code == 303
    page = await reviewer.get("/silences")
    silence_id = re.search(r"/silences/([^/]+)/expire", page.text)
    assert silence_id is not None
    assert "Changbai-Hyesan" in page.text
    ended = await reviewer.post(f"/silences/{silence_id.group(1)}/expire", {})
    assert ended.status_code == 303
    assert "expired" in ended.headers["location"]
    async with store.reading() as session:
        actions = (
            await session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "silence"))
        ).all()
    assert list(actions) == ["silence.added", "silence.expired"]


async def test_pages_read_well(console: Console, visit: Any) -> None:
    v = visit()
    await v.login("vera")
    target = await case_id(console, SHIPYARD)
    case = await v.get(f"/cases/{target}")
    assert "Legal basis:" in case.text
    assert "UNSCR 2397" in case.text
    assert "you may read this case" in case.text
    assert 'action="/cases/' not in case.text
    rules = await v.get("/rules")
    assert "<title>Rules · tradewatch</title>" in rules.text
    assert "shipyard-equipment" in rules.text
    assert "Legal basis" in rules.text
    dash = await v.get("/dashboard")
    assert dash.text.count("<svg") == 3  # no flows chart while the archive is empty: a sentence instead
    assert "No archived report with an HS code" in dash.text
    filtered = await v.get("/?severity=critical&sort=opened&size=2")
    assert "page 1 of" in filtered.text
    assert 'rel="next"' in filtered.text
    partial = await v.get("/?severity=critical", headers={"HX-Request": "true"})
    assert "<html" not in partial.text
    assert "<table" in partial.text


async def test_the_dashboard_charts_the_archives_flows_and_marks_the_surge(
    console: Console, visit: Any
) -> None:
    now = datetime.now(UTC).replace(day=15, hour=0, minute=0, second=0, microsecond=0)

    def lathes(report_id: str, at: datetime) -> ImportReport:
        return make_report(report_id, crossing="Dandong-Sinuiju", reported_at=at.isoformat(),
                           items=[{"description": "lathe", "hs_code": "8458", "quantity": 2, "unit_price": 9_000,
                                   "currency": "USD"}])  # fmt: skip

    quiet = [lathes(f"q{n}", now - timedelta(days=31 * n)) for n in (1, 2, 3, 4)]
    surge = [lathes(f"s{n}", now - timedelta(hours=n)) for n in range(6)]
    await fill(console.store, [*quiet, *surge])
    v = visit()
    await v.login("vera")
    page = await v.get("/dashboard")
    assert page.text.count("<svg") == 4
    assert "far above the trailing months" in page.text  # the surge month's marker
    surges = re.findall(
        r"<tr><td>(\d{4}-\d{2})</td><td>84</td><td>Dandong-Sinuiju</td><td class=\"num\">(\d+)</td>",
        page.text,
    )
    assert surges == [(now.strftime("%Y-%m"), "6")]
    flows = (await v.http.get("/api/dashboard", auth=("vera", PASSWORD))).json()["flows_last_12_months"]
    assert flows["reports_by_chapter"]["HS 84"][-1] == 6
    assert [r["month"] for r in flows["surges"]] == [now.strftime("%Y-%m")]


async def test_an_admin_tries_a_rule_change_on_the_archive(console: Console, visit: Any) -> None:
    samples = [
        ImportReport.model_validate_json(line)
        for line in (ROOT / "config/samples/reports.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    await fill(console.store, samples)
    live = RULES_FILE.read_text(encoding="utf-8")
    without_radio = re.sub(r"\n  - id: radio-telecom\n.*?(?=\n  - id: )", "", live, count=1, flags=re.S)
    assert "id: radio-telecom" not in without_radio
    analyst, admin = visit(), visit()
    await analyst.login("alice")
    refused = await analyst.post("/rules/backtest", {"rules": without_radio})
    assert refused.status_code == 403
    await admin.login("admin")
    assert "Try a rule change on the archive" in (await admin.get("/rules")).text
    broken = await admin.post(
        "/rules/backtest", {"rules": "version: 1\nrules:\n  - id: x\n    severity: huge\n"}
    )
    assert broken.status_code == 400
    assert "The rule file has errors" in broken.text
    page = await admin.post("/rules/backtest", {"rules": without_radio})
    assert page.status_code == 200, page.text[-2000:]
    assert "what the change would do" in page.text
    result = (
        await admin.http.post("/api/rules/backtest", json={"rules": without_radio}, auth=("admin", PASSWORD))
    ).json()
    assert result["reports"] == len(samples)
    radio = next(r for r in result["per_rule"] if r["rule_id"] == "radio-telecom")
    assert radio["live"] > 0
    assert radio["proposed"] == 0
    assert result["alerts_disappear"] == radio["live"]
    assert {c["rule_id"] for c in result["examples"]} == {"radio-telecom"}


async def test_a_case_shows_the_report_as_received_with_the_named_lines_marked(
    console: Console, visit: Any
) -> None:
    report = next(
        ImportReport.model_validate_json(line)
        for line in (ROOT / "config/samples/reports.jsonl").read_text(encoding="utf-8").splitlines()
        if SHIPYARD in line
    )
    target = await case_id(console, SHIPYARD)
    v = visit()
    await v.login("vera")
    assert "The report as received" not in (await v.get(f"/cases/{target}")).text  # not archived yet
    await fill(console.store, [report])
    page = await v.get(f"/cases/{target}")
    assert "The report as received" in page.text
    named = {m.index for a in sample_alerts()[SHIPYARD] for m in a.matched_items}
    assert page.text.count('<tr class="changed">') == len(named)
    if report.text:
        assert "<mark>" in page.text.split('id="received"')[1]
