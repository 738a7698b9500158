"""Render + reload against an ESL double (real socket, real framing) through controller/esl's
inbound client: atomic swap, rollback on -ERR or no FreeSWITCH, restart wait, no secrets."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from controller.fsconfig.model import ConfigInputError
from controller.fsconfig.service import FsConfigService, ReloadError
from controller.fsconfig.tree import APPLIED_MARKER, GENERATION_PREFIX, read_files
from controller.settings import Settings
from controller.store import Store
from tests.fsconfig.esl_double import DROP, RELOAD_LOG, RESTART_REFUSED, EslDouble, captured_replies
from tests.fsconfig.helpers import add_connection, add_org, update_connection, update_sip

T = TypeVar("T")
GW_PASSWORD = "gw-pass-\"<&>-Zq9"
PROVIDER_TOKEN = "tok-secret-XYZ"
SIP_PASSWORD = "sip-pass-123"


def in_thread(fn: Callable[[], T]) -> T:
    # The gevent-based ESL client gets its own hub in a worker thread, as in the API process.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=60)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def service(store: Store, settings: Settings, fs: EslDouble | None, sleep: Sleeps | None = None,
            password: str = "ClueCon", **overrides: object) -> FsConfigService:
    port = fs.port if fs else _closed_port()
    s = replace(settings, esl_host="127.0.0.1", esl_port=port, esl_password=password, **overrides)  # type: ignore[arg-type]
    return FsConfigService(store, s, sleep=sleep or Sleeps())


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# mod_sofia.c cmd_profile's answer to anything but "start" for a profile that does not run.
NOT_RUNNING = "Invalid Profile [kallglot]"


def generations(conf_dir: Path) -> list[str]:
    return sorted(p.name for p in conf_dir.iterdir() if p.name.startswith(GENERATION_PREFIX))


def live_files(conf_dir: Path) -> dict[str, str]:
    return {k: v.text for k, v in read_files((conf_dir / "rendered").resolve()).items()}


def test_first_reload_starts_profile_and_writes_tree(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    org = add_org(store)
    add_connection(store, org, sip={"host": "trunk.example.net", "username": "u", "password": GW_PASSWORD})
    # FreeSWITCH started before any tree existed: no profile runs (mod_sofia.c cmd_profile).
    with EslDouble(script={"sofia profile kallglot restart": NOT_RUNNING}, conf_dir=conf_dir) as fs:
        outcome = in_thread(service(store, settings, fs).reload)
    assert fs.changes == ["reloadxml", "reloadacl", "sofia profile kallglot restart",
                          "sofia profile kallglot start"]
    assert [c.command for c in outcome.commands] == fs.changes
    # "start" answers before the profile thread has bound: the reload waited until it served.
    assert fs.commands[-1] == "sofia status profile kallglot" and fs.status_polls >= 2
    assert outcome.profile_ready_ms is not None and outcome.profile_ready_ms >= 150
    assert outcome.profile_transports == ["tcp", "tls", "udp"]
    assert outcome.commands[2].reply == "Invalid Profile [kallglot]"
    assert outcome.restarted and "directory.xml" in outcome.files_changed
    link = conf_dir / "rendered"
    assert link.is_symlink() and (conf_dir / os.readlink(link)).is_dir()
    secrets_dir = link / "secrets"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets_dir / "gateway_passwords.xml").stat().st_mode) == 0o600
    assert (conf_dir / APPLIED_MARKER).read_text().strip() == os.readlink(link)


def test_only_needed_commands_then_nothing(store: Store, settings: Settings) -> None:
    org = add_org(store)
    with EslDouble() as fs:
        svc = service(store, settings, fs)
        in_thread(svc.reload)
        update_sip(store, org, a1_hash="f" * 32)
        outcome = in_thread(svc.reload)
        assert [c.command for c in outcome.commands] == ["reloadxml"]
        assert outcome.commands[0].reply == "+OK [Success]"
        assert outcome.files_changed == ["directory.xml"] and not outcome.restarted
        connections = fs.connections
        again = in_thread(svc.reload)
        assert again.files_changed == [] and again.commands == [] and fs.connections == connections


def test_restart_refused_in_first_seconds_is_waited_out(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    add_org(store)
    replies = captured_replies()["sofia profile kallglot restart"] if RELOAD_LOG.exists() else [
        RESTART_REFUSED, "Reload XML [Success]\nrestarting: kallglot"]
    sleeps = Sleeps()
    # The first reload meets a FreeSWITCH without the profile ("Invalid Profile" → start).
    script = {"sofia profile kallglot restart": [NOT_RUNNING, *replies]}
    with EslDouble(script=script, conf_dir=conf_dir) as fs:  # type: ignore[arg-type]
        in_thread(service(store, settings, fs, sleeps).reload)
        # An install-wide change (what the profile binds) is what restarts it.
        outcome = in_thread(service(store, settings, fs, sleeps, sip_transports="tls").reload)
    assert fs.changes[-2:] == ["sofia profile kallglot restart"] * 2
    assert outcome.profile_transports == ["tls"]
    assert outcome.restarted and outcome.restart_waits == [8.0] and sleeps.calls == [9.0]
    assert outcome.commands[-1].reply.endswith("restarting: kallglot")


def test_restart_refused_too_often_fails_and_rolls_back(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    add_org(store)
    with EslDouble(script={"sofia profile kallglot restart": [NOT_RUNNING, RESTART_REFUSED]}) as fs:
        in_thread(service(store, settings, fs).reload)
        before = live_files(conf_dir)
        with pytest.raises(ReloadError) as err:
            in_thread(service(store, settings, fs, sip_transports="udp").reload)
    assert "must be up for at least 10 seconds" in (err.value.reply or "")
    assert live_files(conf_dir) == before


def test_err_reply_rolls_back_tree_and_replays_reloadxml(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    org = add_org(store)
    with EslDouble(script={"reloadacl": "-ERR acl reload failed\n"}) as fs:
        svc = service(store, settings, fs)
        with pytest.raises(ReloadError):
            in_thread(svc.reload)  # first render fails at reloadacl: no live tree at all afterwards
        assert not (conf_dir / "rendered").exists() and generations(conf_dir) == []
        fs.script.clear()
        in_thread(svc.reload)
        before, gens = live_files(conf_dir), generations(conf_dir)
        fs.script["reloadacl"] = "-ERR acl reload failed\n"
        fs.commands.clear()
        update_sip(store, org, ip_allowlist=["10.0.0.0/8"])
        with pytest.raises(ReloadError) as err:
            in_thread(svc.reload)
    assert err.value.command == "reloadacl" and err.value.reply == "-ERR acl reload failed\n"
    assert "-ERR acl reload failed" in str(err.value)
    # FreeSWITCH is told to re-read the restored files; the tree is the previous one, byte for byte.
    assert fs.commands == ["reloadxml", "reloadacl", "reloadxml"]
    assert [r.command for r in err.value.restore] == ["reloadxml"]
    assert live_files(conf_dir) == before and generations(conf_dir) == gens


def test_unreachable_freeswitch_rolls_back(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    org = add_org(store)
    with EslDouble() as fs:
        in_thread(service(store, settings, fs).reload)
    before, gens = live_files(conf_dir), generations(conf_dir)
    update_sip(store, org, a1_hash="e" * 32)
    with pytest.raises(ReloadError) as err:
        in_thread(service(store, settings, None).reload)
    assert err.value.reply is None and err.value.command == "reloadxml"
    assert "EslDisconnected" in str(err.value)  # the connect failure, named
    # Nothing was staged or swapped: the connection is made before any file is touched.
    assert live_files(conf_dir) == before and generations(conf_dir) == gens


def test_wrong_esl_password_is_an_error_without_the_password(store: Store, settings: Settings) -> None:
    add_org(store)
    with EslDouble(password="right-one") as fs, pytest.raises(ReloadError) as err:
        in_thread(service(store, settings, fs, password="wrong-Pw-777").reload)
    assert "wrong-Pw-777" not in str(err.value) and "right-one" not in str(err.value)


def test_no_secret_in_main_tree_or_logs(store: Store, settings: Settings, conf_dir: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    org = add_org(store, password=SIP_PASSWORD)
    sip = {"host": "trunk.example.net", "username": "u", "password": GW_PASSWORD}
    conn = add_connection(store, org, sip=sip, credentials={"api_key": PROVIDER_TOKEN}, provider="telnyx",
                          inbound=["192.0.2.1"])
    with EslDouble() as fs:
        svc = service(store, settings, fs)
        outcome = in_thread(svc.reload)
        update_connection(store, conn, sip=sip | {"password": GW_PASSWORD + "2"})
        outcome2 = in_thread(svc.reload)
    assert [c.command for c in outcome2.commands] == [
        f"sofia profile kallglot killgw {conn}", "sofia profile kallglot rescan",
    ]
    main = {k: v for k, v in live_files(conf_dir).items() if not k.startswith("secrets/")}
    secrets_text = live_files(conf_dir)["secrets/gateway_passwords.xml"]
    for secret in (SIP_PASSWORD, GW_PASSWORD, PROVIDER_TOKEN, "gw-pass-"):
        assert all(secret not in text for text in main.values()), secret
        assert secret not in caplog.text and secret not in repr(outcome.as_dict()) + repr(outcome2.as_dict())
    assert PROVIDER_TOKEN not in secrets_text and "gw-pass-" not in secrets_text  # encoded, not plain
    for path in conf_dir.rglob("*"):
        if path.is_file() and "secrets" not in path.parts:
            assert GW_PASSWORD.encode() not in path.read_bytes()


def test_bad_settings_leave_the_live_tree_untouched(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    org = add_org(store)
    svc = FsConfigService(store, settings)
    summary = svc.render_live()
    assert summary["applied"] is True and summary["users"] == 1
    before, gens = live_files(conf_dir), generations(conf_dir)
    broken = FsConfigService(store, replace(settings, sip_domain="bad domain\nx"))
    with pytest.raises(ConfigInputError) as err:
        broken.render_live()
    assert err.value.field == "KALLGLOT_SIP_DOMAIN"
    with pytest.raises(ConfigInputError):
        broken.reload()
    assert live_files(conf_dir) == before and generations(conf_dir) == gens
    # A tenant's newline-bearing CIDR is not an install-wide failure: that user is left out.
    update_sip(store, org, ip_allowlist=["10.0.0.0/8", "10.0.0.1\nevil"])
    summary = svc.render_live()
    assert summary["users"] == 0 and summary["rejected"][0]["field"].endswith("ip_allowlist[1]")


def test_render_only_does_not_count_as_applied(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    org = add_org(store)
    svc = FsConfigService(store, settings)
    svc.render_live()  # bootstrap: FreeSWITCH starts from this tree
    gens = generations(conf_dir)
    assert svc.render_live()["unchanged"] is True and generations(conf_dir) == gens
    update_sip(store, org, a1_hash="d" * 32)
    assert svc.render_live()["applied"] is False
    with EslDouble() as fs:
        outcome = in_thread(service(store, settings, fs).reload)
    # Diffed against what FreeSWITCH last applied, not against the render-only tree.
    assert [c.command for c in outcome.commands] == ["reloadxml"]


def test_concurrent_reloads_apply_a_change_once(store: Store, settings: Settings) -> None:
    org = add_org(store)
    with EslDouble() as fs:
        in_thread(service(store, settings, fs).reload)
        fs.commands.clear()
        update_sip(store, org, a1_hash="c" * 32)
        services = [service(store, settings, fs) for _ in range(4)]  # like CLI, API and listener
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda s: s.reload(), services))
    assert fs.commands == ["reloadxml"]
    assert sorted(len(o.commands) for o in outcomes) == [0, 0, 0, 1]


def test_connection_lost_mid_plan_rolls_back(store: Store, settings: Settings, conf_dir: Path) -> None:
    org = add_org(store)
    with EslDouble() as fs:
        svc = service(store, settings, fs)
        in_thread(svc.reload)
        before, gens = live_files(conf_dir), generations(conf_dir)
        fs.script["reloadacl"] = DROP
        update_sip(store, org, ip_allowlist=["10.0.0.0/8"])
        with pytest.raises(ReloadError) as err:
            in_thread(svc.reload)
    assert err.value.command == "reloadacl" and err.value.reply is None
    assert [r.command for r in err.value.done] == ["reloadxml"] and err.value.restore == []
    assert live_files(conf_dir) == before and generations(conf_dir) == gens


def test_api_restart_with_a_live_tree_restarts_nothing(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    """The api container starts with `kallglot render`, then reloads once (startup): against a
    tree FreeSWITCH already runs, neither touches the profile unless install-wide settings changed."""
    org = add_org(store)
    FsConfigService(store, settings).render_live()  # first start: FreeSWITCH boots from this tree
    with EslDouble(conf_dir=conf_dir) as fs:
        in_thread(service(store, settings, fs).reload)
        update_sip(store, org, ip_allowlist=["10.0.0.0/8"])
        in_thread(service(store, settings, fs).reload)
        # Changes while the api was down (or a render-only run) are not "applied" yet ...
        add_connection(store, org, inbound=["192.0.2.1"], sip={"host": "gw.example", "username": "u",
                                                                "password": "p"})
        assert FsConfigService(store, settings).render_live()["applied"] is False
        # ... so the startup reload applies them, diffed against what FreeSWITCH runs.
        fs.commands.clear()
        outcome = in_thread(service(store, settings, fs).reload)
        assert fs.changes == ["reloadxml", "reloadacl", "sofia profile kallglot rescan"]
        assert not outcome.restarted and outcome.profile_ready_ms is None
        # Another restart of the api with nothing new: the render keeps the generation, no command.
        fs.commands.clear()
        assert FsConfigService(store, settings).render_live()["unchanged"] is True
        assert in_thread(service(store, settings, fs).reload).commands == [] and fs.commands == []
        # Without the applied marker (a tree from before it existed) the live tree is the base.
        (conf_dir / APPLIED_MARKER).unlink()
        assert in_thread(service(store, settings, fs).reload).commands == [] and fs.commands == []
        # Only an install-wide change restarts the profile.
        outcome = in_thread(service(store, settings, fs, sip_transports="udp,tcp").reload)
        assert fs.changes == ["sofia profile kallglot restart"]
        assert outcome.profile_transports == ["tcp", "udp"]
