"""Portal pages against a real API and store: the same rules and messages as /v1, secrets
write-only, the one-time password, sessions with legs and transcript."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from controller.api.admin import SERVICE_KEY
from controller.api.server import create_app
from controller.domain.sip_settings import a1_hash
from controller.fsconfig.service import FsConfigService
from controller.settings import Settings
from controller.store import Store
from media_bridge.records import TurnRecord, insert_turn
from tests.api.server import SIP_DOMAIN, ApiServer, Org, RunningServer
from tests.fsconfig.conftest import STATIC_CONF
from tests.fsconfig.esl_double import EslDouble
from tests.portal.client import Portal, sip_form, text_of

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "00112233445566778899aabbccddcdef"


def _sip(api: ApiServer, org: Org) -> dict:
    return api.call("GET", "/v1/sip", org).json()


def _api_message(api: ApiServer, org: Org, method: str, path: str, body: dict) -> str:
    resp = api.call(method, path, org, body=body)
    assert resp.status_code >= 400, resp.text
    return resp.json()["error"]["message"]


@pytest.fixture
def org(api: ApiServer, portal: Portal) -> Org:
    org = api.org("Acme")
    portal.sign_in(org)
    return org


# ------------------------------------------------------------------------------- Configure SIP


def test_enable_sip_toggle(api: ApiServer, portal: Portal, org: Org) -> None:
    page = portal.post("/portal/telephony/sip/enabled", {"enabled": "true"})
    assert page.url.endswith("/portal/telephony/sip")  # post → redirect → get
    assert "SIP is enabled." in text_of(page.text) and 'id="sip-state" class="state-on">enabled' in page.text
    assert _sip(api, org)["enabled"] is True
    off = portal.post("/portal/telephony/sip/enabled", {"enabled": "false"})
    assert "SIP is disabled." in text_of(off.text) and _sip(api, org)["enabled"] is False
    assert api.notified == [org.id, org.id]
    # The notice is shown once.
    assert "SIP is disabled." not in text_of(portal.get("/portal/telephony/sip").text)


def test_username_and_domain_are_shown(api: ApiServer, portal: Portal, org: Org) -> None:
    page = portal.get("/portal/telephony/sip").text
    assert f'id="sip-username">{_sip(api, org)["username"]}<' in page
    assert f'id="sip-domain">{SIP_DOMAIN}<' in page
    assert 'data-copy="sip-username"' in page and "Not generated yet" in page


def test_regenerated_password_is_shown_once(api: ApiServer, portal: Portal, org: Org) -> None:
    resp = portal.post("/portal/telephony/sip/password")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    password = re.search(r'id="sip-password">([^<]+)<', resp.text).group(1)  # type: ignore[union-attr]
    assert "it is not shown again" in text_of(resp.text)
    sip = _sip(api, org)
    row = api.store.query_one("SELECT a1_hash FROM sip_settings WHERE org_id = ?", (org.id,))
    assert row["a1_hash"] == a1_hash(sip["username"], SIP_DOMAIN, password)
    assert sip["credentials_set"] is True
    again = portal.get("/portal/telephony/sip").text
    assert password not in again and 'id="sip-password"' not in again and "Set 20" in again
    assert api.notified == [org.id]


def test_bad_allowlist_line_shows_the_apis_message_and_saves_nothing(
    api: ApiServer, portal: Portal, org: Org
) -> None:
    lines = "203.0.113.0/24\n10.0.0.1/33\n2001:db8::/32"
    resp = portal.post("/portal/telephony/sip", sip_form(ip_allowlist=lines, max_concurrent_calls="7"))
    assert resp.status_code == 400
    expected = _api_message(api, org, "PATCH", "/v1/sip", {"ip_allowlist": lines.split("\n")})
    assert expected == "Invalid ip_allowlist[1]: '10.0.0.1/33' is not an IPv4/IPv6 address or CIDR network"
    text = text_of(resp.text)
    assert "Nothing was saved" in text and f"Line 2: {expected}" in text
    assert 'aria-invalid="true"' in resp.text
    assert lines in resp.text.replace("\r\n", "\n")  # the form comes back as typed
    assert _sip(api, org)["ip_allowlist"] == [] and _sip(api, org)["max_concurrent_calls"] == 10
    assert api.notified == []

    ok = portal.post("/portal/telephony/sip", sip_form(ip_allowlist="203.0.113.0/24\n\n2001:db8::/32\n"))
    assert ok.status_code == 200 and "Settings saved." in text_of(ok.text)
    assert _sip(api, org)["ip_allowlist"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert api.notified == [org.id]


def test_every_bad_line_is_reported(api: ApiServer, portal: Portal, org: Org) -> None:
    resp = portal.post("/portal/telephony/sip", sip_form(ip_allowlist="1.2.3.4/24\nfoo\n10.0.0.0/8"))
    text = text_of(resp.text)
    assert "Line 1: Invalid ip_allowlist[0]: '1.2.3.4/24' has host bits set; did you mean 1.2.3.0/24?" in text
    assert "Line 2: Invalid ip_allowlist[1]: 'foo' is not an IPv4/IPv6 address or CIDR network" in text


def test_domain_rule_message_is_the_apis(api: ApiServer, portal: Portal, org: Org) -> None:
    resp = portal.post("/portal/telephony/sip", sip_form(require_tls="on"))
    assert resp.status_code == 400
    expected = _api_message(api, org, "PATCH", "/v1/sip", {"require_tls": True})
    assert expected.startswith("require_tls=true needs allowed_transports")
    assert expected in text_of(resp.text) and _sip(api, org)["require_tls"] is False

    ok = portal.post(
        "/portal/telephony/sip",
        sip_form(require_tls="on", require_srtp="on", transport_tcp=None, transport_udp=None),
    )
    assert ok.status_code == 200
    sip = _sip(api, org)
    assert (sip["require_tls"], sip["require_srtp"], sip["allowed_transports"]) == (True, True, ["tls"])


def test_no_transport_and_bad_number_use_the_apis_words(api: ApiServer, portal: Portal, org: Org) -> None:
    resp = portal.post(
        "/portal/telephony/sip",
        sip_form(transport_tls=None, transport_tcp=None, transport_udp=None, max_concurrent_calls="lots"),
    )
    text = text_of(resp.text)
    assert "Invalid allowed_transports: List should have at least 1 item after validation, not 0" in text
    assert "Invalid max_concurrent_calls: Input should be a valid integer" in text
    assert _api_message(api, org, "PATCH", "/v1/sip", {"max_concurrent_calls": "lots"}) in text


def test_codec_order_and_session_defaults(api: ApiServer, portal: Portal, org: Org) -> None:
    form = sip_form(
        codec_order_PCMU="1",
        codec_order_OPUS="2",
        codec_order_G722="3",
        codec_order_PCMA="4",
        codec_G722=None,
        mode="assistive_translation",
        region="us",
        source_language="es",
        target_language="en",
        max_concurrent_calls="3",
    )
    assert portal.post("/portal/telephony/sip", form).status_code == 200
    sip = _sip(api, org)
    assert sip["allowed_codecs"] == ["PCMU", "OPUS", "PCMA"]
    assert sip["session_defaults"] == {
        "mode": "assistive_translation",
        "region": "us",
        "source_language": "es",
        "target_language": "en",
    }
    assert sip["max_concurrent_calls"] == 3
    page = portal.get("/portal/telephony/sip").text
    order = re.findall(r'<li data-codec="(\w+)">', page)
    assert order == ["PCMU", "OPUS", "PCMA", "G722"]  # allowed ones in preference order, then the rest
    assert re.search(r'name="codec_G722" id="codec_G722">', page)  # unticked


def test_unknown_language_is_refused(api: ApiServer, portal: Portal, org: Org) -> None:
    resp = portal.post("/portal/telephony/sip", sip_form(source_language="xx"))
    assert resp.status_code == 400
    assert "Invalid session_defaults.source_language: String should match pattern" not in text_of(resp.text)
    assert "'xx' is not an ISO 639-1 two-letter language code or 'auto'" in text_of(resp.text)


# ---------------------------------------------------------------------- provider connections


def _twilio_form(**extra: str) -> dict[str, str]:
    return {
        "provider": "twilio",
        "name": "Twilio EU",
        "account_sid": SID,
        "auth_token": TOKEN,
        "api_key": "",
        **extra,
    }


def test_add_twilio_connection_secrets_never_shown(api: ApiServer, portal: Portal, org: Org) -> None:
    resp = portal.post(
        "/portal/telephony/connections",
        _twilio_form(
            sip_host="acme.pstn.twilio.com",
            sip_username="trunkuser",
            sip_password="s3cret-pass",
            sip_register="on",
            inbound_addresses="54.172.60.0/30\n54.244.51.3",
            is_default="on",
        ),
    )
    assert resp.status_code == 200 and "Connection “Twilio EU” added" in text_of(resp.text)
    con = api.call("GET", "/v1/connections", org).json()["data"][0]
    assert con["is_default"] and con["sip"]["register"] is True
    assert con["inbound_addresses"] == ["54.172.60.0/30", "54.244.51.3"]
    assert TOKEN not in resp.text and "s3cret-pass" not in resp.text
    assert "••••cdef" in resp.text and SID in resp.text
    assert api.notified == [org.id]


def test_bad_credentials_show_the_apis_message_and_no_secret(
    api: ApiServer, portal: Portal, org: Org
) -> None:
    bad = _twilio_form(account_sid="AB" + "0" * 32)
    resp = portal.post("/portal/telephony/connections", bad)
    assert resp.status_code == 400
    body = {
        "provider": "twilio",
        "name": "Twilio EU",
        "credentials": {"account_sid": bad["account_sid"], "auth_token": TOKEN},
    }
    assert _api_message(api, org, "POST", "/v1/connections", body) in text_of(resp.text)
    assert TOKEN not in resp.text  # the typed token is not sent back
    assert "AB" + "0" * 32 in resp.text  # the SID (not a secret) is
    assert api.call("GET", "/v1/connections", org).json()["data"] == []

    telnyx = portal.post(
        "/portal/telephony/connections", {"provider": "telnyx", "name": "Tx", "api_key": "nope"}
    )
    assert "Invalid credentials.api_key: String should match pattern" in text_of(telnyx.text)
    trunk = portal.post("/portal/telephony/connections", _twilio_form(sip_host="bad host!"))
    assert "Invalid sip.host" in text_of(trunk.text)


def test_set_default_and_disable(api: ApiServer, portal: Portal, org: Org) -> None:
    portal.post("/portal/telephony/connections", _twilio_form(is_default="on"))
    portal.post(
        "/portal/telephony/connections",
        {"provider": "telnyx", "name": "Telnyx US", "api_key": "KEY0123456789_abc"},
    )
    cons = {c["name"]: c for c in api.call("GET", "/v1/connections", org).json()["data"]}
    resp = portal.post(f"/portal/telephony/connections/{cons['Telnyx US']['id']}/default")
    assert "“Telnyx US” is now the default connection" in text_of(resp.text)
    resp = portal.post(f"/portal/telephony/connections/{cons['Twilio EU']['id']}/disable")
    assert "is disabled" in text_of(resp.text)
    after = {c["name"]: c for c in api.call("GET", "/v1/connections", org).json()["data"]}
    assert after["Telnyx US"]["is_default"] and not after["Twilio EU"]["is_default"]
    assert after["Twilio EU"]["status"] == "disabled"
    assert portal.post(f"/portal/telephony/connections/{cons['Twilio EU']['id']}/enable").status_code == 200
    assert api.call("GET", f"/v1/connections/{cons['Twilio EU']['id']}", org).json()["status"] == "active"


# ------------------------------------------------------------------------------------ numbers


def test_add_and_release_number(api: ApiServer, portal: Portal, org: Org) -> None:
    assert "provider connection</a> first" in portal.get("/portal/telephony/numbers").text
    portal.post("/portal/telephony/connections", _twilio_form())
    con = api.call("GET", "/v1/connections", org).json()["data"][0]
    bad = portal.post("/portal/telephony/numbers", {"number": "0301234", "connection_id": con["id"]})
    assert bad.status_code == 400
    expected = _api_message(
        api, org, "POST", "/v1/phone_numbers", {"number": "0301234", "connection_id": con["id"]}
    )
    assert expected in text_of(bad.text)
    ok = portal.post("/portal/telephony/numbers", {"number": "+4930123456", "connection_id": con["id"]})
    assert "+4930123456 added." in text_of(ok.text)
    number = api.call("GET", "/v1/phone_numbers", org).json()["data"][0]
    assert (number["number"], number["connection_id"], number["status"]) == (
        "+4930123456",
        con["id"],
        "active",
    )
    taken = portal.post("/portal/telephony/numbers", {"number": "+4930123456", "connection_id": con["id"]})
    assert "+4930123456 is already in use" in text_of(taken.text)
    released = portal.post(f"/portal/telephony/numbers/{number['id']}/release")
    assert "+4930123456 released." in text_of(released.text)
    assert api.call("GET", f"/v1/phone_numbers/{number['id']}", org).json()["status"] == "released"


# -------------------------------------------------------------------------------- PBX snippets


def test_pbx_snippets(api: ApiServer, portal: Portal, org: Org) -> None:
    page = portal.get("/portal/telephony/pbx")
    assert page.status_code == 200
    username = _sip(api, org)["username"]
    for key in ("freeswitch", "asterisk", "summary"):
        assert f'id="snippet-{key}"' in page.text
    assert username in page.text and SIP_DOMAIN in page.text
    assert "&lt;gateway" in page.text  # XML shown as text, escaped once more by the page


# ----------------------------------------------------------------------------------- sessions


def test_session_with_legs_and_transcript(api: ApiServer, portal: Portal, org: Org) -> None:
    api.call("PATCH", "/v1/sip", org, body={"enabled": True})
    s = api.call(
        "POST",
        "/v1/sessions",
        org,
        body={"routing": {"type": "sip"}, "source_language": "es", "target_language": "en"},
    ).json()
    with api.store.transaction() as conn:
        conn.execute(
            "INSERT INTO call_legs (id, session_id, org_id, call_uuid, role, direction, status, sip_code,"
            " remote, created_at) VALUES ('leg_1', ?, ?, 'uuid-1', 'customer', 'inbound', 'streaming', 200,"
            " 'alice', 1700000000)",
            (s["id"], org.id),
        )
    insert_turn(
        api.store,
        TurnRecord(
            s["id"],
            "customer",
            "es",
            "Hola, <b>necesito</b> ayuda",
            "en",
            "Hello, I need help",
            1700000001.0,
            1700000002.0,
            "apertium",
        ),
    )
    listing = portal.get("/portal/sessions").text
    assert s["id"] in listing and "customer inbound: streaming (SIP 200)" in text_of(listing)
    assert 'data-live-url="/portal/sessions/live"' in listing
    page = portal.get(f"/portal/sessions/{s['id']}").text
    assert "Hola, &lt;b&gt;necesito&lt;/b&gt; ayuda" in page  # autoescaped
    assert "Hello, I need help" in page and f"sip:{s['id']}@{SIP_DOMAIN}" in page
    assert f'data-live-url="/portal/sessions/{s["id"]}/live"' in page

    insert_turn(
        api.store,
        TurnRecord(
            s["id"], "agent", "en", "How can I help?", "es", "¿Cómo puedo ayudar?", 1700000003.0, 1700000004.0
        ),
    )
    fragment = portal.get(f"/portal/sessions/{s['id']}/live")
    assert "¿Cómo puedo ayudar?" in fragment.text and 'data-live="on"' in fragment.text
    assert "<html" not in fragment.text

    api.call("POST", f"/v1/sessions/{s['id']}/end", org)
    ended = portal.get(f"/portal/sessions/{s['id']}").text
    assert 'data-live="off"' in ended and "data-live-url" not in ended


# ------------------------------------------------------------------------ applying to FreeSWITCH


def test_saving_reports_what_freeswitch_did(store: Store, tmp_path: Path) -> None:
    """With the admin routes' reload service (kallglot api), a save renders and reloads FreeSWITCH
    at once and the page says how it went; an unreachable switch is reported, the save stands."""
    conf = tmp_path / "conf"
    shutil.copytree(
        STATIC_CONF,
        conf,
        symlinks=True,
        ignore=shutil.ignore_patterns("rendered", ".rendered-*", ".kallglot-*"),
    )
    with EslDouble(conf_dir=conf) as fs:
        settings = Settings(
            sip_domain=SIP_DOMAIN,
            db_path=store.path,
            fs_conf_dir=conf,
            esl_host="127.0.0.1",
            esl_port=fs.port,
        )
        FsConfigService(store, settings).render_live()  # FreeSWITCH started from this tree
        app = create_app(settings, store)
        app[SERVICE_KEY] = [FsConfigService(store, settings)]  # what controller.api.admin.install sets
        server = RunningServer(app)
        try:
            api = ApiServer(f"http://127.0.0.1:{server.port}", store, settings, app)
            portal = Portal(api)
            org = api.org()
            portal.sign_in(org)
            portal.post("/portal/telephony/sip/password")
            resp = portal.post("/portal/telephony/sip/enabled", {"enabled": "true"})
            text = text_of(resp.text)
            assert "SIP is enabled. FreeSWITCH reloaded (reloadxml" in text, text
            assert "reloadxml" in fs.changes
            fs.__exit__(None, None, None)  # FreeSWITCH goes away
            resp = portal.post("/portal/telephony/sip", sip_form(ip_allowlist="198.51.100.7"))
            assert "Settings saved. FreeSWITCH did not reload" in text_of(resp.text)
            assert _sip(api, org)["ip_allowlist"] == ["198.51.100.7"]
        finally:
            server.stop()


def test_error_summary_links_to_the_fields(api: ApiServer, portal: Portal, org: Org) -> None:
    resp = portal.post("/portal/telephony/sip", sip_form(ip_allowlist="x/1", source_language="xx"))
    summary = resp.text[resp.text.index('id="error-summary"') :]
    assert '<a href="#ip_allowlist">' in summary and '<a href="#source_language">' in summary
    con = portal.post(
        "/portal/telephony/connections", {"provider": "twilio", "name": "T", "account_sid": "x"}
    )
    assert '<a href="#account_sid">Invalid credentials.account_sid' in con.text
