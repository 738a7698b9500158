"""POST /admin/reload and the debounced settings listener, on a real aiohttp server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from controller.api.admin import DEBOUNCER_KEY, RELOAD_DELAY_KEY, RELOAD_ON_STARTUP_KEY, install
from controller.api.server import create_app
from controller.appkeys import SETTINGS_LISTENERS_KEY
from controller.domain import api_keys, organizations
from controller.settings import Settings
from controller.store import Store
from tests.fsconfig.esl_double import EslDouble
from tests.fsconfig.helpers import add_org, update_sip

TOKEN = "admin-Token-42"


class Server:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app)
        self._run(self.runner.setup())
        self._run(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def post(self, path: str, token: str | None = TOKEN, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return requests.post(self.base + path, headers=headers | kw.pop("headers", {}), timeout=60, **kw)

    def stop(self) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Env:
    server: Server
    fs: EslDouble
    store: Store


def start(store: Store, settings: Settings, fs: EslDouble, token: str = TOKEN,
          reload_on_startup: bool = False, **overrides: Any) -> Server:
    s = replace(settings, admin_token=token, esl_host="127.0.0.1", esl_port=fs.port, db_path=store.path,
                **overrides)
    app = create_app(s, store)
    app[RELOAD_DELAY_KEY] = 0.05
    app[RELOAD_ON_STARTUP_KEY] = reload_on_startup
    install(app)
    return Server(app)


@pytest.fixture
def env(store: Store, settings: Settings) -> Iterator[Env]:
    with EslDouble() as fs:
        server = start(store, settings, fs)
        yield Env(server, fs, store)
        server.stop()


def test_admin_disabled_without_token(store: Store, settings: Settings) -> None:
    with EslDouble() as fs:
        server = start(store, settings, fs, token="")
        try:
            r = server.post("/admin/reload", token="anything")
        finally:
            server.stop()
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "admin_disabled" and r.headers["X-Request-ID"].startswith("req_")
    assert fs.commands == []


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_wrong_or_missing_token_is_401(env: Env, token: str | None) -> None:
    r = env.server.post("/admin/reload", token=token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token"
    assert TOKEN not in r.text and env.fs.commands == []


def test_reload_reports_files_and_commands(env: Env) -> None:
    org = add_org(env.store)
    r = env.server.post("/admin/reload")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["commands"] == [
        {"command": "reloadxml", "reply": "+OK [Success]"},
        {"command": "reloadacl", "reply": "+OK acl reloaded"},
        # Nothing applied yet: the profile is rebuilt with restart (FreeSWITCH runs it here).
        {"command": "sofia profile kallglot restart", "reply": "Reload XML [Success]\nrestarting: kallglot"},
    ]
    assert body["restarted"] is True and "directory.xml" in body["files_changed"]
    # The answer came once the restarted profile served again (the double keeps it away 0.2 s).
    assert body["profile_ready_ms"] >= 150 and body["profile_transports"] == ["tcp", "tls", "udp"]
    update_sip(env.store, org, allowed_codecs=["PCMU"])
    body = env.server.post("/admin/reload").json()
    assert [c["command"] for c in body["commands"]] == ["sofia profile kallglot rescan"]
    assert body["files_changed"] == ["sip_profile.xml"] and body["restarted"] is False
    assert body["profile_ready_ms"] is None and body["profile_transports"] is None


def test_restart_profile_rebuilds_the_profile_when_no_file_changed(env: Env) -> None:
    # An operator replaced the TLS certificate files: nothing rendered changes, sofia reads them
    # only when the profile starts.
    add_org(env.store)
    assert env.server.post("/admin/reload").status_code == 200
    assert env.server.post("/admin/reload").json()["commands"] == []  # up to date
    body = env.server.post("/admin/reload", json={"restart_profile": True}).json()
    assert [c["command"] for c in body["commands"]] == ["sofia profile kallglot restart"]
    assert body["restarted"] is True and body["files_changed"] == []
    assert body["profile_ready_ms"] >= 150  # answered once the profile served again


@pytest.mark.parametrize("body", [{"restart_profile": "yes"}, {"restart": True}, [True]])
def test_a_bad_reload_body_is_400_naming_the_field(env: Env, body: object) -> None:
    r = env.server.post("/admin/reload", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("parameter_invalid", "restart_profile")
    assert env.fs.commands == []


def test_freeswitch_error_is_502_with_its_reply(env: Env) -> None:
    add_org(env.store)
    env.fs.script["reloadxml"] = "-ERR [XML parse error]\n"
    r = env.server.post("/admin/reload")
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "freeswitch_reload_failed" and "-ERR [XML parse error]" in err["message"]
    assert err["freeswitch"]["reply"] == "-ERR [XML parse error]\n" and err["freeswitch"]["rolled_back"]


def test_bad_install_setting_is_422_naming_it(store: Store, settings: Settings) -> None:
    add_org(store)
    with EslDouble() as fs:
        server = start(store, settings, fs, controller_address="controller-without-port")
        try:
            r = server.post("/admin/reload")
        finally:
            server.stop()
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_configuration"
    assert r.json()["error"]["param"] == "KALLGLOT_CONTROLLER_ADDRESS" and fs.commands == []


def test_a_tenants_bad_record_is_left_out_and_reported(env: Env, conf_dir: Path) -> None:
    good = add_org(env.store, username="good")
    bad = add_org(env.store, username="bad")
    update_sip(env.store, bad, allowed_codecs=["PCMU", "G729"])
    r = env.server.post("/admin/reload")
    assert r.status_code == 200
    assert r.json()["rejected"] == [{"field": f"sip_settings[{bad}].allowed_codecs[1]",
                                     "reason": "'G729' is not one of OPUS, G722, PCMU, PCMA"}]
    directory = (conf_dir / "rendered" / "directory.xml").read_text()
    assert good in directory and bad not in directory


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_settings_changes_are_debounced_into_one_reload(env: Env) -> None:
    org = add_org(env.store)
    listeners = env.server.app[SETTINGS_LISTENERS_KEY]
    for _ in range(20):
        for listener in listeners:
            listener(org)
    debouncer = env.server.app[DEBOUNCER_KEY]
    wait_for(lambda: debouncer.runs >= 1)
    assert env.fs.changes == ["reloadxml", "reloadacl", "sofia profile kallglot restart"]


def test_api_sip_patch_reaches_freeswitch(env: Env, conf_dir: Path) -> None:
    org = organizations.create_organization(env.store, "Acme")
    key = api_keys.create_key(env.store, org.id).secret
    headers = {"Authorization": f"Bearer {key}"}
    r = requests.post(env.server.base + "/v1/sip/credentials", headers=headers, timeout=30)
    assert r.status_code in (200, 201), r.text
    password = r.json()["password"]
    r = requests.patch(env.server.base + "/v1/sip", json={"enabled": True}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    wait_for(lambda: "sofia profile kallglot restart" in env.fs.commands)
    directory = (conf_dir / "rendered" / "directory.xml").read_text()
    assert r.json()["username"] in directory and password not in directory


def test_api_start_brings_freeswitch_up_to_date(store: Store, settings: Settings) -> None:
    add_org(store)
    with EslDouble() as fs:
        server = start(store, settings, fs, reload_on_startup=True)
        try:
            wait_for(lambda: server.app[DEBOUNCER_KEY].runs >= 1)
        finally:
            server.stop()
    assert fs.changes == ["reloadxml", "reloadacl", "sofia profile kallglot restart"]
