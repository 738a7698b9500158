"""A reload that (re)starts the sofia profile answers only once the profile serves again.

FreeSWITCH 1.10.12 answers ``sofia profile P restart`` at once, then lists no profile for ~2 s
(INVITEs meanwhile: 503 Maximum Calls In Progress, or nothing). The reload polls
``sofia status profile P`` until the profile runs with every transport it should bind."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from controller.fsconfig.apply import CommandResult
from controller.fsconfig.ready import (
    ProfileNotReadyError,
    expected_transports,
    parse_profile_status,
    wait_profile_ready,
)
from controller.fsconfig.service import ReloadError
from controller.settings import Settings, SettingsError
from controller.store import Store
from tests.conftest import FIXTURES_DIR
from tests.fsconfig.esl_double import EslDouble
from tests.fsconfig.helpers import add_org, make_settings
from tests.fsconfig.test_reload import NOT_RUNNING, in_thread, live_files, service
from tests.fsdouble.config import Profile
from tests.fsdouble.sofia_status import INVALID_PROFILE, profile_status

RENDERED_LIKE = {"sip-ip": "10.0.0.5", "ext-sip-ip": "203.0.113.5", "sip-port": "5060",
                 "tls": "true", "tls-only": "false", "tls-sip-port": "5061",
                 "tls-bind-params": "transport=tls", "context": "kallglot"}


# ------------------------------------------------------------------ reading the status reply

def test_status_of_a_running_profile_lists_its_bind_urls() -> None:
    reply = profile_status(Profile("kallglot", RENDERED_LIKE))
    # cmd_status: url = ext-sip-ip, bindurl adds ;maddr=<sip-ip> and the transports.
    assert "BIND-URL         \tsip:mod_sofia@203.0.113.5:5060;maddr=10.0.0.5;transport=udp,tcp\n" in reply
    assert "TLS-BIND-URL     \tsips:mod_sofia@203.0.113.5:5061;maddr=10.0.0.5;transport=tls\n" in reply
    status = parse_profile_status(reply)
    assert status.running and status.transports == {"udp", "tcp", "tls"}


def test_the_status_of_a_real_running_profile_reads_as_running_with_its_transports() -> None:
    # Captured from FreeSWITCH 1.10.12 (this project's local build) running the rendered tree.
    reply = (FIXTURES_DIR / "api" / "sofia-status-profile-running.txt").read_text()
    status = parse_profile_status(reply)
    assert status.running and status.transports == {"udp", "tcp", "tls"}
    # The double's rendering of the same profile has the same keys, in the same layout.
    double = profile_status(Profile("kallglot", RENDERED_LIKE | {"ext-rtp-ip": "203.0.113.5"}))

    def keys(text: str) -> list[str]:
        return [line.split("\t")[0] for line in text.splitlines() if "\t" in line]

    assert keys(double) == keys(reply)


@pytest.mark.parametrize(("params", "bound"), [
    ({}, {"udp", "tcp", "tls"}),
    ({"bind-params": "transport=udp"}, {"udp", "tls"}),
    ({"tls": "false"}, {"udp", "tcp"}),
    ({"tls-only": "true"}, {"tls"}),  # no BIND-URL line at all with tls-only
    ({"tls": "false", "tls-only": "true"}, {"udp", "tcp"}),  # tls-only means nothing without tls
])
def test_expected_transports_match_what_the_status_shows(params: dict[str, str], bound: set[str]) -> None:
    settings = RENDERED_LIKE | params
    assert expected_transports(settings) == bound
    assert parse_profile_status(profile_status(Profile("kallglot", settings))).transports == bound


@pytest.mark.parametrize("reply", [INVALID_PROFILE, "", "Invalid Profile [kallglot]"])
def test_not_running_replies(reply: str) -> None:
    assert not parse_profile_status(reply).running


class FakeEsl:
    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.sent: list[str] = []

    def api(self, cmd: str) -> str:
        self.sent.append(cmd)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_polls_until_running_with_all_transports() -> None:
    running = profile_status(Profile("kallglot", RENDERED_LIKE))
    tls_missing = profile_status(Profile("kallglot", RENDERED_LIKE | {"tls": "false"}))
    esl, clock = FakeEsl([INVALID_PROFILE] * 17 + [tls_missing, running]), Clock()
    waited, status = wait_profile_ready(esl, "kallglot", frozenset({"udp", "tcp", "tls"}), 20.0,
                                        sleep=clock.sleep, clock=clock)
    assert esl.sent == ["sofia status profile kallglot"] * 19
    assert waited == pytest.approx(1.8) and status.transports == {"udp", "tcp", "tls"}


def test_wait_gives_up_after_the_timeout_naming_what_it_saw() -> None:
    done = [CommandResult("sofia profile kallglot restart", "Reload XML [Success]\nrestarting: kallglot")]
    esl, clock = FakeEsl([INVALID_PROFILE]), Clock()
    with pytest.raises(ProfileNotReadyError) as err:
        wait_profile_ready(esl, "kallglot", frozenset({"udp", "tcp"}), 2.0, done,
                           sleep=clock.sleep, clock=clock)
    assert str(err.value) == ("sofia status profile kallglot: profile kallglot not serving tcp,udp after "
                              "2.0 s: not running (Invalid Profile!)")
    assert err.value.reply == INVALID_PROFILE and err.value.waited_ms == 2000 and err.value.done == done
    assert clock.now == pytest.approx(2.0)  # bounded: never sleeps past the deadline


def test_wait_stops_at_once_on_an_err_reply() -> None:
    esl, clock = FakeEsl(["-ERR sofia Command not found!\n"]), Clock()
    with pytest.raises(ProfileNotReadyError) as err:
        wait_profile_ready(esl, "kallglot", frozenset({"udp"}), 20.0, sleep=clock.sleep, clock=clock)
    assert "refused the status query: -ERR sofia Command not found!" in str(err.value)
    assert len(esl.sent) == 1


# ------------------------------------------------------------------ the setting

def test_ready_timeout_setting() -> None:
    assert Settings.from_env({}).profile_ready_timeout_s == 20.0
    assert Settings.from_env({"KALLGLOT_PROFILE_READY_TIMEOUT_S": "7.5"}).profile_ready_timeout_s == 7.5
    for bad in ("0", "-1", "601", "soon"):
        with pytest.raises(SettingsError, match="KALLGLOT_PROFILE_READY_TIMEOUT_S"):
            Settings.from_env({"KALLGLOT_PROFILE_READY_TIMEOUT_S": bad})


def test_sip_transports_setting() -> None:
    assert Settings.from_env({}).sip_transports == "udp,tcp,tls"
    assert Settings.from_env({"KALLGLOT_SIP_TRANSPORTS": "tls"}).sip_transports == "tls"
    for bad in ("sctp", "udp,ws", ","):
        with pytest.raises(SettingsError, match="KALLGLOT_SIP_TRANSPORTS"):
            Settings.from_env({"KALLGLOT_SIP_TRANSPORTS": bad})


# ------------------------------------------------------------------ through the reload

def test_reload_returns_only_once_the_restarted_profile_serves(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    add_org(store)
    with EslDouble(profile_start_delay=0.8, conf_dir=conf_dir) as fs:
        in_thread(service(store, settings, fs).reload)  # first reload: restart, profile ready
        started = time.monotonic()
        outcome = in_thread(service(store, settings, fs, sip_transports="udp,tcp").reload)
        elapsed = time.monotonic() - started
        # Right after the reload returned, FreeSWITCH lists the profile with what it should bind.
        now = parse_profile_status(fs.reply_for("sofia status profile kallglot"))
    assert [c.command for c in outcome.commands] == ["sofia profile kallglot restart"]
    assert elapsed >= 0.8 and outcome.profile_ready_ms is not None and outcome.profile_ready_ms >= 700
    assert outcome.profile_transports == ["tcp", "udp"] and now.running and now.transports == {"udp", "tcp"}
    assert outcome.as_dict()["profile_ready_ms"] == outcome.profile_ready_ms


def test_profile_not_back_in_time_fails_the_reload_and_restores_the_previous_config(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    add_org(store)
    with EslDouble(profile_start_delay=0.1, conf_dir=conf_dir) as fs:
        in_thread(service(store, settings, fs).reload)
        before = live_files(conf_dir)
        fs.profile_start_delay = 30.0  # e.g. the new TLS files are missing and sofia cannot bind
        fs.commands.clear()
        with pytest.raises(ReloadError) as err:
            in_thread(service(store, settings, fs, sip_transports="tls", profile_ready_timeout_s=0.5).reload)
    assert err.value.command == "sofia status profile kallglot"
    assert "profile kallglot not serving tls after" in str(err.value) and "Invalid Profile!" in str(err.value)
    body = err.value.as_dict()
    assert body["rolled_back"] and body["profile_ready_ms"] >= 500 and body["reply"] == INVALID_PROFILE
    assert live_files(conf_dir) == before  # the previous good tree is live again
    # ... and the profile is started from it (a rescan, should it be running after all).
    assert fs.changes == ["sofia profile kallglot restart", "sofia profile kallglot start"]
    assert [r.command for r in err.value.restore] == ["sofia profile kallglot start"]


def test_profile_running_with_other_transports_is_not_ready(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    add_org(store)
    # FreeSWITCH says the profile runs, but without TLS: not what was rendered.
    udp_tcp_only = profile_status(Profile("kallglot", RENDERED_LIKE | {"tls": "false"}))
    script = {"sofia profile kallglot restart": NOT_RUNNING, "sofia status profile kallglot": udp_tcp_only}
    with EslDouble(script=script) as fs, pytest.raises(ReloadError) as err:  # type: ignore[arg-type]
        in_thread(service(store, settings, fs, profile_ready_timeout_s=0.3).reload)
    assert "not serving tcp,tls,udp after" in str(err.value) and "running with tcp,udp" in str(err.value)
    assert not (conf_dir / "rendered").exists()  # first reload: nothing to go back to


def test_first_ever_reload_waits_for_the_started_profile(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    add_org(store)
    # FreeSWITCH started without any tree: "restart" → "Invalid Profile" → "start", which also
    # answers before the profile thread has bound.
    script = {"sofia profile kallglot restart": NOT_RUNNING}
    with EslDouble(script=script, profile_start_delay=0.5, conf_dir=conf_dir) as fs:  # type: ignore[arg-type]
        outcome = in_thread(service(store, settings, fs).reload)
    assert [c.command for c in outcome.commands][-1] == "sofia profile kallglot start"
    assert outcome.profile_ready_ms is not None and outcome.profile_ready_ms >= 400


def test_make_settings_default_waits_long_enough_for_a_slow_bind() -> None:
    # sofia retries a failed bind once after 5 s (bind-attempts 2, interval 5): the default
    # timeout covers that and the ~2 s observed restart.
    assert make_settings(Path("/unused")).profile_ready_timeout_s > 2 * 5.0
    assert replace(make_settings(Path("/unused")), profile_ready_timeout_s=1.0).profile_ready_timeout_s == 1.0
