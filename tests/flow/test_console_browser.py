"""The console as a person uses it: ``tradewatch console`` as its own process, driven in a real
browser (Debian's chromium through chromedriver, Selenium). Log in, filter the inbox, open a
case, comment, close a critical case as false positive, see it wait for a second reviewer,
approve it as another user; a viewer is refused; a request without the CSRF token is refused; a
forged cookie opens nothing. Screenshots of the inbox, a case and the dashboard are written to
``TRADEWATCH_SCREENSHOTS`` (default var/screenshots/) for a person to look at.

Where no chromium and chromedriver can be found the tests skip, saying so (`.ci/run` installs
them: ``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.report import ImportReport
from services.casework import users
from services.casework.records import record_alerts
from services.server import free_port
from services.settings import DEFAULT_CASE_DUE, Settings
from services.store import Store
from services.store.migrate import upgrade
from tests.dbfixtures import sample_alerts
from tests.helpers import ROOT, SHARED, wait_until
from tests.history import fill
from tests.pipeline import worker_env

pytestmark = pytest.mark.slow  # a console process and a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
PASSWORD = "a long enough password"
SHIPYARD = "sample-2026-03-rason-shipyard"  # critical
SHOTS = Path(os.environ.get("TRADEWATCH_SCREENSHOTS", ROOT / "var" / "screenshots"))

if CHROMIUM is None or DRIVER is None:
    pytest.skip(
        "no browser for the console's end-to-end tests: install Debian's chromium and chromium-driver "
        "(`apt-get install chromium chromium-driver`; .ci/run does)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


async def _prepare(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        await upgrade(store)
        await users.bootstrap_admin(store)
        await users.set_password(store, "admin", "admin", PASSWORD)
        for name, role in [("alice", "analyst"), ("rita", "reviewer"), ("vera", "viewer")]:
            await users.add_user(store, "admin", name, role, PASSWORD)
        async with store.writing() as session:
            await record_alerts(session, [a for g in sample_alerts().values() for a in g], DEFAULT_CASE_DUE)
        # The reports as received, in the archive: the case pages show them, the dashboard its flows.
        lines = (ROOT / "config/samples/reports.jsonl").read_text(encoding="utf-8").splitlines()
        await fill(store, [ImportReport.model_validate_json(line) for line in lines if line.strip()])
        async with store.reading() as session:
            from sqlalchemy import select

            from services.store.models import Case

            return {r: i for i, r in (await session.execute(select(Case.id, Case.report_id))).all()}
    finally:
        await store.dispose()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[str, dict[str, int]]]:
    """A console process over a store with the sample cases and four users."""
    data = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{data / 'store.db'}"
    cases = asyncio.run(_prepare(url))
    settings = Settings(redis_url=redis_url, namespace=f"console-{os.getpid()}", data_dir=data)
    port = free_port()
    extra = {"database_url": url, "console_port": str(port), "log_format": "console"}
    nomenclature = SHARED / "data" / "hs2022.csv"
    if nomenclature.exists():
        extra["nomenclature_file"] = str(nomenclature)
    env = worker_env(settings, **extra)
    env["TRADEWATCH_RULES_FILES"] = str(ROOT / "config/rules.yaml")
    env["TRADEWATCH_CATALOG_FILE"] = str(ROOT / "config/catalog.yaml")
    log = (data / "console.log").open("w")
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/tradewatch"), "console"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, timeout=60), (data / "console.log").read_text()[-3000:]
        yield base, cases
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def log_in(d: WebDriver, base: str, name: str) -> None:
    d.delete_all_cookies()
    d.get(base + "/login")
    d.find_element(By.NAME, "name").send_keys(name)
    d.find_element(By.NAME, "password").send_keys(PASSWORD)
    d.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(d, 10).until(lambda x: "/login" not in x.current_url)


def shoot(d: WebDriver, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = int(d.execute_script("return document.body.scrollHeight"))
    d.set_window_size(1400, min(max(height + 40, 800), 4000))
    path = SHOTS / f"{name}.png"
    d.save_screenshot(str(path))
    d.set_window_size(1400, 1000)
    return path


def post(d: WebDriver, path: str, fields: dict[str, str]) -> Any:
    """A POST from the page's own origin, as a script in it could make; its status."""
    return d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1]), redirect: 'manual'})"
        ".then(r => done(r.status)).catch(e => done(String(e)));",
        path,
        fields,
    )


def test_an_analyst_closes_a_critical_case_and_a_reviewer_approves(
    served: tuple[str, dict[str, int]], browser: WebDriver
) -> None:
    base, cases = served
    d = browser
    log_in(d, base, "alice")
    rows = d.find_elements(By.CSS_SELECTOR, "table.cases tbody tr")
    assert len(rows) == len(sample_alerts())
    shoot(d, "inbox")
    Select(d.find_element(By.NAME, "severity")).select_by_value("critical")  # htmx refreshes the list
    critical = sum(1 for alerts in sample_alerts().values() if max(a.severity.rank for a in alerts) == 4)
    WebDriverWait(d, 10).until(
        lambda x: len(x.find_elements(By.CSS_SELECTOR, "table.cases tbody tr")) == critical
    )
    assert "severity=critical" in d.current_url
    # The keyboard: Esc leaves the filters, j moves to the first case, Enter opens it; then back.
    first = d.find_element(By.CSS_SELECTOR, "table.cases tbody tr").get_attribute("data-href")
    ActionChains(d).send_keys(Keys.ESCAPE).send_keys("j").send_keys(
        Keys.ENTER
    ).perform()  # Esc leaves the filter
    WebDriverWait(d, 10).until(lambda x: x.current_url.endswith(str(first)))
    d.back()
    d.find_element(By.CSS_SELECTOR, f'a[href="/cases/{cases[SHIPYARD]}"]').click()
    WebDriverWait(d, 10).until(lambda x: x.current_url.endswith(f"/cases/{cases[SHIPYARD]}"))
    assert "Legal basis" in d.page_source
    assert "UNSCR 2397" in d.page_source
    assert "The report as received" in d.page_source
    d.find_element(By.CSS_SELECTOR, "#comment textarea").send_keys(
        "Checked the bill of lading: lathes, as reported."
    )
    d.find_element(By.CSS_SELECTOR, "#comment button").click()
    assert "Comment added." in d.find_element(By.CSS_SELECTOR, ".flash.done").text
    assert "Checked the bill of lading" in d.find_element(By.ID, "comments").find_element(By.XPATH, "..").text
    Select(d.find_element(By.CSS_SELECTOR, "#close select")).select_by_value("false_positive")
    d.find_element(By.CSS_SELECTOR, "#close textarea").send_keys(
        "Toy lathes for a school fair, photos attached."
    )
    d.find_element(By.CSS_SELECTOR, "#close button").click()
    assert "waits for a second reviewer" in d.find_element(By.CSS_SELECTOR, ".flash.done").text
    assert "Waiting for a second reviewer" in d.find_element(By.CSS_SELECTOR, "aside.actions").text
    shoot(d, "case")
    log_in(d, base, "rita")
    d.get(f"{base}/cases/{cases[SHIPYARD]}")
    d.find_element(By.XPATH, "//button[text()='Approve the close']").click()
    assert "close is approved" in d.find_element(By.CSS_SELECTOR, ".flash.done").text
    assert "Approved by rita" in d.find_element(By.CSS_SELECTOR, "aside.actions").text
    d.get(base + "/dashboard")
    assert len(d.find_elements(By.CSS_SELECTOR, "svg.chart")) == 4
    shoot(d, "dashboard")
    for name in ("inbox", "case", "dashboard"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000


def test_a_viewer_a_missing_csrf_token_and_a_forged_cookie_are_refused(
    served: tuple[str, dict[str, int]], browser: WebDriver
) -> None:
    base, cases = served
    d = browser
    case = cases["sample-2026-03-dandong-farm"]
    log_in(d, base, "vera")
    d.get(f"{base}/cases/{case}")
    assert "you may read this case" in d.page_source
    assert not d.find_elements(By.CSS_SELECTOR, "#comment textarea")
    token = d.find_element(By.TAG_NAME, "body").get_attribute("data-csrf")
    assert post(d, f"/cases/{case}/comment", {"text": "a viewer's note", "csrf": str(token)}) == 403
    log_in(d, base, "alice")
    assert post(d, f"/cases/{case}/comment", {"text": "no token"}) == 403
    d.get(f"{base}/cases/{case}")
    assert "no token" not in d.page_source
    assert "a viewer's note" not in d.page_source
    d.delete_all_cookies()
    d.add_cookie({"name": "tw_session", "value": "eyJ1IjoiYWRtaW4ifQ.forged"})
    d.get(base + "/")
    assert "/login" in d.current_url
