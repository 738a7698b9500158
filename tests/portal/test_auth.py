"""Portal sign-in (one-time links), the session cookie, CSRF, sign-out, and organization isolation."""

from __future__ import annotations

import json
import time

import pytest
import requests

from controller import cli
from controller.domain.timeutil import now
from controller.portal import auth
from tests.api.server import ApiServer
from tests.portal.client import Portal, field_value, sip_form, text_of


def _sip(api: ApiServer, org) -> dict:
    return api.call("GET", "/v1/sip", org).json()


# -------------------------------------------------------------------------------- sign-in


def test_link_signs_in_once_and_shows_the_organization(api: ApiServer, portal: Portal) -> None:
    org = api.org("Acme Telecom")
    token = portal.login_link(org)
    page = portal.get("/portal/login")
    assert page.status_code == 200 and 'id="sign-in"' in page.text
    # Opening the link does not spend it (link previewers fetch URLs): only the button does.
    nonce = field_value(page.text, "nonce")
    home = portal.http.post(portal.url("/portal/login"), data={"token": token, "nonce": nonce})
    assert home.status_code == 200 and home.url.endswith("/portal/")
    assert "Acme Telecom" in home.text and org.id in home.text

    other = Portal(api)
    again = other.get("/portal/login")
    reused = other.http.post(
        other.url("/portal/login"), data={"token": token, "nonce": field_value(again.text, "nonce")}
    )
    assert reused.status_code == 401
    assert "unknown, already used or expired" in text_of(reused.text)
    assert "kallglot_portal" not in reused.cookies


def test_expired_and_unknown_links_are_refused(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    link = auth.create_login_link(api.store, org.id, ttl_s=-1)
    for token in (link.token, "kgpl_" + "x" * 40, "nonsense"):
        page = portal.get("/portal/login")
        resp = portal.http.post(
            portal.url("/portal/login"), data={"token": token, "nonce": field_value(page.text, "nonce")}
        )
        assert resp.status_code == 401, token
    assert portal.get("/portal/telephony/sip").url.endswith("/portal/login")


def test_login_form_needs_its_nonce_cookie(api: ApiServer, portal: Portal) -> None:
    """Login CSRF: a form posted from elsewhere (no nonce cookie) signs nobody in, and the link
    stays unspent."""
    org = api.org()
    token = portal.login_link(org)
    resp = portal.http.post(portal.url("/portal/login"), data={"token": token, "nonce": "forged"})
    assert resp.status_code == 403
    portal.http.cookies.clear()
    page = portal.get("/portal/login")
    ok = portal.http.post(
        portal.url("/portal/login"), data={"token": token, "nonce": field_value(page.text, "nonce")}
    )
    assert ok.url.endswith("/portal/")


def test_only_hashes_are_stored(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    token = portal.login_link(org)
    page = portal.get("/portal/login")
    portal.http.post(
        portal.url("/portal/login"), data={"token": token, "nonce": field_value(page.text, "nonce")}
    )
    cookie = portal.http.cookies.get("kallglot_portal")
    assert cookie
    stored = [tuple(r) for r in api.store.query("SELECT * FROM portal_login_tokens")]
    stored += [tuple(r) for r in api.store.query("SELECT * FROM portal_sessions")]
    assert stored and not any(v in (token, cookie) for row in stored for v in row)
    assert api.store.query_one("SELECT used_at FROM portal_login_tokens")["used_at"] is not None


def test_cookie_flags(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    token = portal.login_link(org)
    page = portal.get("/portal/login")
    resp = portal.http.post(
        portal.url("/portal/login"),
        data={"token": token, "nonce": field_value(page.text, "nonce")},
        allow_redirects=False,
    )
    assert resp.status_code == 303
    header = resp.headers["Set-Cookie"]
    session_cookie = next(part for part in header.split(", kallglot") if "kallglot_portal=" in part)
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert "Path=/portal/" in session_cookie and "Secure" not in session_cookie

    # Behind a TLS-terminating proxy the cookie is Secure.
    token = portal.login_link(org)
    proxied = {"X-Forwarded-Proto": "https"}
    page = portal.get("/portal/login", headers=proxied)
    assert "Secure" in page.headers["Set-Cookie"]
    nonce = field_value(page.text, "nonce")
    # requests keeps a Secure cookie for https URLs only: send it by hand, as the proxy would.
    resp = requests.post(
        portal.url("/portal/login"),
        allow_redirects=False,
        timeout=30,
        headers={**proxied, "Cookie": f"kallglot_portal_login={nonce}"},
        data={"token": token, "nonce": nonce},
    )
    assert resp.status_code == 303 and "Secure" in resp.headers["Set-Cookie"]


def test_pages_need_a_session(api: ApiServer, portal: Portal) -> None:
    for path in ("/portal/", "/portal/telephony/sip", "/portal/sessions", "/portal/logs"):
        resp = portal.get(path, allow_redirects=False)
        assert resp.status_code == 303 and resp.headers["Location"] == "/portal/login", path
    assert portal.post("/portal/telephony/sip/enabled", {"enabled": "true"}).status_code == 401
    assert portal.get("/portal").url.endswith("/portal/login")


def test_api_key_and_portal_cookie_do_not_stand_in_for_each_other(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    # An API key is not a portal sign-in...
    resp = portal.get(
        "/portal/telephony/sip", headers={"Authorization": f"Bearer {org.key}"}, allow_redirects=False
    )
    assert resp.status_code == 303
    # ...and the portal cookie is not an API credential (nor is it sent outside /portal/).
    portal.sign_in(org)
    cookie = portal.http.cookies.get("kallglot_portal")
    refused = api.http.get(api.base + "/v1/sip", cookies={"kallglot_portal": cookie}, timeout=30)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_required"
    assert portal.get("/v1/sip").status_code == 401


def test_sign_out_ends_the_session(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    portal.sign_in(org)
    cookie = portal.http.cookies.get("kallglot_portal")
    out = portal.post("/portal/logout")
    assert out.url.endswith("/portal/login?signed_out=1") and "You are signed out" in out.text
    replay = api.http.get(
        api.base + "/portal/telephony/sip",
        cookies={"kallglot_portal": cookie},
        allow_redirects=False,
        timeout=30,
    )
    assert replay.status_code == 303
    assert api.store.query_one("SELECT COUNT(*) AS n FROM portal_sessions")["n"] == 0


def test_expired_session_is_signed_out(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    portal.sign_in(org)
    with api.store.transaction() as conn:
        conn.execute("UPDATE portal_sessions SET expires_at = ?", (int(time.time()) - 1,))
    assert portal.get("/portal/telephony/sip").url.endswith("/portal/login")


# ---------------------------------------------------------------------------------- CSRF


def test_forms_without_the_csrf_token_are_refused(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    portal.sign_in(org)
    missing = portal.post("/portal/telephony/sip/enabled", {"enabled": "true"}, csrf=False)
    assert missing.status_code == 403
    assert "security token is missing or out of date" in text_of(missing.text)
    wrong = portal.post(
        "/portal/telephony/sip/enabled", [("enabled", "true"), ("csrf_token", "x" * 43)], csrf=False
    )
    assert wrong.status_code == 403
    assert (
        portal.post("/portal/telephony/sip", sip_form(ip_allowlist="10.0.0.0/8"), csrf=False).status_code
        == 403
    )
    assert portal.post("/portal/logout", csrf=False).status_code == 403
    assert _sip(api, org)["enabled"] is False and _sip(api, org)["ip_allowlist"] == []
    assert api.notified == []

    ok = portal.post("/portal/telephony/sip/enabled", {"enabled": "true"})
    assert ok.status_code == 200 and _sip(api, org)["enabled"] is True
    assert api.notified == [org.id]


def test_another_sessions_csrf_token_is_refused(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    portal.sign_in(org)
    other = Portal(api)
    other.sign_in(org)
    resp = portal.post(
        "/portal/telephony/sip/enabled", [("enabled", "true"), ("csrf_token", other.csrf)], csrf=False
    )
    assert resp.status_code == 403


# --------------------------------------------------------------------- organization isolation


def test_another_organizations_urls_answer_404(api: ApiServer, portal: Portal) -> None:
    acme, globex = api.org("Acme"), api.org("Globex")
    body = {
        "provider": "twilio",
        "name": "Globex trunk",
        "is_default": True,
        "credentials": {"account_sid": "AC" + "0" * 32, "auth_token": "1" * 32},
    }
    con = api.call("POST", "/v1/connections", globex, body=body).json()
    number = api.call(
        "POST", "/v1/phone_numbers", globex, body={"number": "+4930111222", "connection_id": con["id"]}
    ).json()
    session = api.call("POST", "/v1/sessions", globex, body={}).json()

    portal.sign_in(acme)
    for path in (f"/portal/sessions/{session['id']}", f"/portal/sessions/{session['id']}/live"):
        resp = portal.get(path)
        assert resp.status_code == 404, path
        assert f"No such session: '{session['id']}'" in text_of(resp.text)
    for path in (
        f"/portal/telephony/connections/{con['id']}/default",
        f"/portal/telephony/connections/{con['id']}/disable",
        f"/portal/telephony/numbers/{number['id']}/release",
    ):
        assert portal.post(path).status_code == 404, path
    listed = portal.get("/portal/telephony/connections").text + portal.get("/portal/sessions").text
    assert con["id"] not in listed and session["id"] not in listed and "Globex trunk" not in listed
    assert api.call("GET", f"/v1/phone_numbers/{number['id']}", globex).json()["status"] == "active"
    assert api.call("GET", f"/v1/connections/{con['id']}", globex).json()["status"] == "active"


def test_unknown_portal_route_is_an_html_404(api: ApiServer, portal: Portal) -> None:
    portal.sign_in(api.org())
    resp = portal.get("/portal/no/such/page")
    assert resp.status_code == 404 and resp.headers["Content-Type"].startswith("text/html")
    assert "route_not_found" in resp.text


# ------------------------------------------------------------------------ headers and logs


def test_security_headers(api: ApiServer, portal: Portal) -> None:
    portal.sign_in(api.org())
    page = portal.get("/portal/telephony/sip")
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Request-ID"].startswith("req_")
    static = portal.get("/portal/static/portal.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_portal_requests_stay_out_of_the_api_log(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    api.call("GET", "/v1/sip", org)
    portal.sign_in(org)
    portal.post("/portal/telephony/sip/enabled", {"enabled": "true"})
    page = portal.get("/portal/logs")
    assert page.status_code == 200 and "GET /v1/sip" in text_of(page.text)
    paths = [r["path"] for r in api.call("GET", "/v1/api_logs", org).json()["data"]]
    assert "/v1/sip" in paths and not any(p.startswith("/portal") for p in paths if p)


def test_logs_page_filters_with_the_apis_rules(api: ApiServer, portal: Portal) -> None:
    org = api.org()
    api.call("GET", "/v1/sip", org)
    api.call("GET", "/v1/sessions/sess_nope", org)
    portal.sign_in(org)
    page = text_of(portal.get("/portal/logs", params={"status": "4xx", "kind": "", "method": ""}).text)
    assert "GET /v1/sessions/sess_nope" in page and "GET /v1/sip " not in page
    bad = portal.get("/portal/logs", params={"status": "abc"})
    assert bad.status_code == 400 and "status must be a status (404) or a class (4xx)" in text_of(bad.text)


# ------------------------------------------------------------------------------------ CLI


def test_cli_prints_a_working_link(
    api: ApiServer, portal: Portal, capsys: pytest.CaptureFixture[str]
) -> None:
    org = api.org()
    db = str(getattr(api.store, "target", api.store.path))  # a SQLite path or a PostgreSQL URL
    code = cli.main(["portal", "link", "--org", org.id, "--db", db, "--base-url", api.base + "/"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    # The token travels in the fragment: browsers never send it, so no server log holds it.
    assert out["organization"] == org.id and out["token"].startswith("kgpl_")
    assert out["url"] == f"{api.base}/portal/login#token={out['token']}"
    assert out["expires_at"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now()))
    page = portal.http.get(out["url"], timeout=30)
    assert out["token"] not in page.text
    resp = portal.http.post(
        portal.url("/portal/login"), data={"token": out["token"], "nonce": field_value(page.text, "nonce")}
    )
    assert resp.url.endswith("/portal/") and org.id in resp.text

    assert cli.main(["portal", "link", "--org", "org_nope", "--db", db]) == 1
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "resource_missing"


def test_signing_in_again_replaces_the_session(api: ApiServer, portal: Portal) -> None:
    acme, globex = api.org("Acme"), api.org("Globex")
    portal.sign_in(acme)
    old = portal.http.cookies.get("kallglot_portal")
    assert "You are signed in to" in portal.get("/portal/login").text
    home = portal.sign_in(globex)
    assert "Globex" in home.text and globex.id in home.text
    replay = api.http.get(
        api.base + "/portal/", cookies={"kallglot_portal": old}, allow_redirects=False, timeout=30
    )
    assert replay.status_code == 303
    assert api.store.query_one("SELECT COUNT(*) AS n FROM portal_sessions")["n"] == 1
