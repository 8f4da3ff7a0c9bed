"""The dashboard in a real browser (headless Debian chromium + chromedriver, driven by Selenium):
log in, deploy an example, start an instance, offer an event and see it appear live over /ws —
as a developer, and as a viewer (who cannot deploy, start or offer but sees the live trace)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import PASSWORDS, ApiEnv, served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian chromium and chromium-driver are not installed (make test installs them; "
    "or: apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def base_url(api_env: ApiEnv) -> Iterator[str]:
    with served(api_env.app) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, cond: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(cond)


def css(driver: Any, sel: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, sel)


def log_in(driver: Any, url: str, role: str) -> None:
    driver.get(url + "/")
    wait(driver, lambda d: css(d, "#login-user").is_displayed())
    css(driver, "#login-user").send_keys(role)
    css(driver, "#login-pass").send_keys(PASSWORDS[role])
    css(driver, "#login-btn").click()
    wait(driver, lambda d: f"({role})" in css(d, "#whoami").text)
    wait(driver, lambda d: css(d, "#page-systems").is_displayed())


def trace_items(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#trace li")]


def test_developer_deploys_starts_offers_and_sees_it_live(api_env: ApiEnv, base_url: str, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select

    d = browser
    log_in(d, base_url, "developer")
    wait(d, lambda d: len(Select(css(d, "#deploy-example")).options) > 1)
    Select(css(d, "#deploy-example")).select_by_value("buffer/buffer.csp")
    assert css(d, "#deploy-process").get_attribute("value") == "BUFFER"
    name = f"web{uuid.uuid4().hex[:6]}"
    css(d, "#deploy-name").clear()
    css(d, "#deploy-name").send_keys(name)
    css(d, "#deploy-btn").click()
    wait(d, lambda d: f"deployed {name} v1" in css(d, "#deploy-result").text)
    assert "pass" in css(d, "#deploy-result").text
    row = wait(d, lambda d: css(d, f'#systems-table tr[data-system="{name}"]'))
    assert "pass" in row.text
    css(d, f'button.lts-btn[data-system="{name}"]').click()
    wait(d, lambda d: css(d, "#lts img").get_attribute("naturalWidth") not in (None, "0"))
    css(d, f'button.start-btn[data-system="{name}"]').click()
    wait(d, lambda d: css(d, "#instance-detail").is_displayed() and css(d, "#detail-id").text.startswith(name))
    iid = css(d, "#detail-id").text
    wait(d, lambda d: "left.1" in css(d, "#acceptable").text)
    assert trace_items(d) == []
    css(d, "#offer-event").send_keys("left.1")
    css(d, "#offer-btn").click()
    wait(d, lambda d: "accepted left.1" in css(d, "#offer-result").text)
    # the trace is fed by the WebSocket only: these items arrived live
    wait(d, lambda d: "right.1" in trace_items(d))
    assert [t for t in trace_items(d) if t != "τ"] == ["left.1", "right.1"]
    css(d, "#offer-event").clear()
    css(d, "#offer-event").send_keys("right.0")
    css(d, "#offer-btn").click()
    wait(d, lambda d: any(t.startswith("refused right.0") for t in trace_items(d)))
    api_env.client.post(f"/api/v1/instances/{iid}/offer", headers=api_env.auth("developer"), json={"event": "left.2"})
    wait(d, lambda d: "right.2" in trace_items(d))
    # refusals page: the refused offer is listed
    d.get(base_url + "/#refusals")
    wait(d, lambda d: iid in css(d, "#refusals-table").text and "right.0" in css(d, "#refusals-table").text)
    # SQL page: a query on the embedded ClickHouse, its table and its chart
    d.get(base_url + "/#sql")
    wait(d, lambda d: css(d, "#page-sql").is_displayed())
    css(d, "#sql-text").clear()
    css(d, "#sql-text").send_keys("SELECT number AS n, number * number AS sq FROM system.numbers LIMIT 5")
    css(d, "#sql-btn").click()
    wait(d, lambda d: "16" in css(d, "#sql-table").text)
    wait(d, lambda d: len(d.find_elements("css selector", "#chart-svg rect")) == 5)
    # audit page: its status or the reason it has none
    d.get(base_url + "/#audit")
    wait(d, lambda d: css(d, "#audit-status").text.strip() != "")


def test_viewer_cannot_deploy_but_sees_live_traces(api_env: ApiEnv, base_url: str, browser: Any) -> None:
    c, dev = api_env.client, api_env.auth("developer")
    from api_helpers import buffer_source

    name = f"view{uuid.uuid4().hex[:6]}"
    assert c.post("/api/v1/processes", headers=dev, json={"source": buffer_source(), "process": "BUFFER",
                  "name": name, "outputs": ["right"]}).status_code == 201  # fmt: skip
    iid = c.post(f"/api/v1/processes/{name}/start", headers=dev, json={}).json()["id"]
    d = browser
    log_in(d, base_url, "viewer")
    assert not css(d, "#deploy-btn").is_enabled()
    assert "developer role needed" in css(d, '#deploy-form .role-note').text
    wait(d, lambda d: css(d, f'button.start-btn[data-system="{name}"]'))
    assert not css(d, f'button.start-btn[data-system="{name}"]').is_enabled()
    # forcing the request from the page: the API says 403
    status = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t = JSON.parse(sessionStorage.getItem("csp.tokens"));
        fetch("/api/v1/processes", {method: "POST", headers: {"Content-Type": "application/json",
              Authorization: "Bearer " + t.access_token}, body: JSON.stringify({source: "P = STOP", process: "P"})})
          .then(r => done(r.status));
    """)
    assert status == 403
    d.get(base_url + "/#instances")
    wait(d, lambda d: css(d, f'button.open-btn[data-instance="{iid}"]'))
    css(d, f'button.open-btn[data-instance="{iid}"]').click()
    wait(d, lambda d: css(d, "#detail-id").text == iid)
    assert not css(d, "#offer-btn").is_enabled()
    import time

    time.sleep(1.0)  # the WebSocket subscription is in place
    c.post(f"/api/v1/instances/{iid}/offer", headers=dev, json={"event": "left.0"})
    wait(d, lambda d: "right.0" in trace_items(d))
