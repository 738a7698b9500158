"""The portal in a real Chromium (Debian's chromium + chromium-driver, driven by Selenium) against
a running API server with a real store: the guide's steps, the way an admin clicks through them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.domain.sip_settings import a1_hash
from controller.portal import auth
from media_bridge.records import TurnRecord, insert_turn
from tests.api.server import SIP_DOMAIN, ApiServer, Org

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no Chromium here: install Debian's chromium and chromium-driver (.ci/run setup does)",
)
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e .[test])"
)
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "00112233445566778899aabbccddcdef"


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: CI runs as root; a laptop-sized window.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,768"):
        options.add_argument(arg)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    browser.implicitly_wait(0)
    yield browser
    browser.quit()


@pytest.fixture
def b(driver: WebDriver) -> Iterator[WebDriver]:
    driver.delete_all_cookies()  # each test signs in afresh (cookies of the last origin)
    yield driver


def wait_for(driver: WebDriver, check: Callable[[WebDriver], Any], timeout: float = 10.0) -> Any:
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check)
    except TimeoutException:
        main = driver.find_element(By.TAG_NAME, "main").text
        raise AssertionError(f"timed out on {driver.current_url}:\n{main}") from None


def text(driver: WebDriver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def click(driver: WebDriver, css: str) -> None:
    driver.find_element(By.CSS_SELECTOR, css).click()


def sign_in(driver: WebDriver, api: ApiServer, org: Org) -> None:
    token = auth.create_login_link(api.store, org.id).token
    driver.get(f"{api.base}/portal/login#token={token}")
    # portal.js moves the code from the fragment into the form and out of the address bar.
    wait_for(driver, lambda d: d.find_element(By.ID, "token").get_attribute("value") == token)
    assert driver.current_url == f"{api.base}/portal/login"
    click(driver, "#sign-in")
    wait_for(driver, lambda d: d.current_url == f"{api.base}/portal/")


def nav(driver: WebDriver, label: str) -> None:
    driver.find_element(By.LINK_TEXT, label).click()
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]").text == label)


def sip(api: ApiServer, org: Org) -> dict:
    return api.call("GET", "/v1/sip", org).json()


def flash(driver: WebDriver) -> str:
    return text(driver, "#flash")


def test_admin_configures_sip_a_trunk_and_watches_a_session(b: WebDriver, api: ApiServer) -> None:
    org = api.org("Acme Telecom")
    sign_in(b, api, org)
    assert "Acme Telecom" in text(b, "header")

    # Telephony > SIP / PBX > Configure SIP: Enable SIP.
    nav(b, "SIP / PBX")
    assert text(b, "h1") == "Configure SIP" and text(b, "#sip-state") == "disabled"
    click(b, "#sip-toggle")
    wait_for(b, lambda d: text(d, "#sip-state") == "enabled")
    assert flash(b).startswith("SIP is enabled.") and sip(api, org)["enabled"] is True

    # Username and domain, each with a copy button.
    assert text(b, "#sip-username") == sip(api, org)["username"] and text(b, "#sip-domain") == SIP_DOMAIN
    copy = b.find_element(By.CSS_SELECTOR, "button[data-copy=sip-username]")
    copy.click()
    wait_for(b, lambda d: copy.text == "Copied")

    # Regenerate Password: shown once, with the warning.
    click(b, "#regenerate-password")
    password = wait_for(b, lambda d: d.find_elements(By.ID, "sip-password"))[0].text
    assert "it is not shown again" in text(b, "section.secret")
    assert sip(api, org)["credentials_set"] is True
    row = api.store.query_one("SELECT a1_hash FROM sip_settings WHERE org_id = ?", (org.id,))
    assert row["a1_hash"] == a1_hash(sip(api, org)["username"], SIP_DOMAIN, password)
    b.get(f"{api.base}/portal/telephony/sip")
    assert not b.find_elements(By.ID, "sip-password") and password not in b.page_source

    # IP Allowlist: a bad CIDR is refused with the API's message, nothing saved.
    allowlist = b.find_element(By.ID, "ip_allowlist")
    allowlist.send_keys("203.0.113.0/24\n10.0.0.1/33")
    click(b, "#save-settings")
    summary = wait_for(b, lambda d: d.find_elements(By.ID, "error-summary"))[0].text
    assert "Invalid ip_allowlist[1]: '10.0.0.1/33' is not an IPv4/IPv6 address or CIDR network" in summary
    assert "Line 2:" in text(b, "#ip_allowlist-errors")
    assert b.find_element(By.ID, "ip_allowlist").get_attribute("aria-invalid") == "true"
    assert sip(api, org)["ip_allowlist"] == []
    # The form came back as typed: fix the line and save.
    allowlist = b.find_element(By.ID, "ip_allowlist")
    assert allowlist.get_attribute("value") == "203.0.113.0/24\n10.0.0.1/33"
    allowlist.clear()
    allowlist.send_keys("203.0.113.0/24\n10.0.0.0/8")
    click(b, "#save-settings")
    wait_for(b, lambda d: d.find_elements(By.ID, "flash"))
    assert flash(b).startswith("Settings saved.")
    assert sip(api, org)["ip_allowlist"] == ["203.0.113.0/24", "10.0.0.0/8"]

    # Advanced Settings: move PCMU to the top with the keyboard-usable arrow buttons.
    up = b.find_element(By.CSS_SELECTOR, "button[aria-label='Move PCMU up']")
    up.click()
    up.click()
    assert b.switch_to.active_element == up  # focus stays on the moved row's button
    order = [li.get_attribute("data-codec") for li in b.find_elements(By.CSS_SELECTOR, "#codecs li")]
    assert order == ["PCMU", "OPUS", "G722", "PCMA"]
    click(b, "#codec_G722")  # untick G722
    Select(b.find_element(By.ID, "target_language")).select_by_value("en")
    click(b, "#save-settings")
    wait_for(b, lambda d: d.find_elements(By.ID, "flash"))
    assert sip(api, org)["allowed_codecs"] == ["PCMU", "OPUS", "PCMA"]
    assert sip(api, org)["session_defaults"]["target_language"] == "en"

    # Provider connections > Add Provider Connection (Twilio).
    nav(b, "Provider connections")
    assert not b.find_element(By.CSS_SELECTOR, "fieldset[data-provider=telnyx]").is_displayed()
    b.find_element(By.ID, "name").send_keys("Twilio EU")
    b.find_element(By.ID, "account_sid").send_keys(SID)
    b.find_element(By.ID, "auth_token").send_keys(TOKEN)
    b.find_element(By.ID, "inbound_addresses").send_keys("54.172.60.0/30")
    click(b, "#is_default")
    click(b, "#add-connection-button")
    wait_for(b, lambda d: d.find_elements(By.ID, "flash"))
    table = text(b, "#connections")
    assert "Twilio EU" in table and "••••cdef" in table and "default" in table
    assert TOKEN not in b.page_source
    con = api.call("GET", "/v1/connections", org).json()["data"][0]
    assert con["is_default"] and con["inbound_addresses"] == ["54.172.60.0/30"]

    # Numbers: add one on that connection.
    nav(b, "Numbers")
    b.find_element(By.ID, "number").send_keys("+4930123456")
    Select(b.find_element(By.ID, "connection_id")).select_by_value(con["id"])
    click(b, "#add-number-button")
    wait_for(b, lambda d: "+4930123456" in text(d, "#numbers"))
    assert api.call("GET", "/v1/phone_numbers", org).json()["data"][0]["connection_id"] == con["id"]

    # A session created through the API appears, and its transcript fills in while it runs.
    nav(b, "Sessions")
    created = api.call(
        "POST",
        "/v1/sessions",
        org,
        body={"routing": {"phone_number": "+4930123456"}, "source_language": "es", "target_language": "en"},
    )
    session_id = created.json()["id"]
    link = wait_for(b, lambda d: d.find_elements(By.LINK_TEXT, session_id))  # the list polls too
    link[0].click()
    wait_for(b, lambda d: d.find_elements(By.ID, "transcript-empty"))
    assert text(b, "#session-status") == "created"
    insert_turn(
        api.store,
        TurnRecord(
            session_id,
            "customer",
            "es",
            "Hola, necesito ayuda",
            "en",
            "Hello, I need help",
            1700000001.0,
            1700000002.0,
            "apertium",
        ),
    )
    wait_for(b, lambda d: "Hello, I need help" in text(d, "#session-live"))
    assert "Hola, necesito ayuda" in text(b, "#transcript")

    # API Logs list the API calls made above; sign out.
    nav(b, "API Logs")
    assert "POST /v1/sessions" in text(b, "#api-logs")
    click(b, "#sign-out")
    wait_for(b, lambda d: "/portal/login" in d.current_url)
    b.get(f"{api.base}/portal/telephony/sip")
    assert "/portal/login" in b.current_url


def test_other_organizations_urls_are_404_and_forms_need_the_csrf_token(b: WebDriver, api: ApiServer) -> None:
    acme, globex = api.org("Acme"), api.org("Globex")
    body = {
        "provider": "twilio",
        "name": "Globex trunk",
        "is_default": True,
        "credentials": {"account_sid": SID, "auth_token": TOKEN},
    }
    api.call("POST", "/v1/connections", globex, body=body)
    theirs = api.call("POST", "/v1/sessions", globex, body={}).json()["id"]

    sign_in(b, api, acme)
    b.get(f"{api.base}/portal/sessions/{theirs}")
    assert text(b, "h1") == "Not found"
    assert text(b, "#error-message") == f"No such session: '{theirs}'"

    # A form posted without its CSRF token is refused and changes nothing.
    b.get(f"{api.base}/portal/telephony/sip")
    b.execute_script("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    click(b, "#sip-toggle")
    wait_for(b, lambda d: d.find_elements(By.ID, "error-message"))
    assert "security token is missing or out of date" in text(b, "#error-message")
    assert sip(api, acme)["enabled"] is False
