"""Portal settings → render → reload over ESL → what a caller sees, on the FreeSWITCH test double
(tests/fsdouble: real ESL socket; it reads the rendered tree the way FreeSWITCH does)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from controller.fsconfig.service import FsConfigService
from controller.settings import Settings
from controller.store import Store
from tests.fsconfig.helpers import add_org, update_sip

T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=120)


def test_settings_changes_reach_callers_through_reload(
    store: Store, settings: Settings, conf_dir: Path
) -> None:
    fsdouble = pytest.importorskip("tests.fsdouble")
    add_org(store, username="alice", password="pw-alice")
    FsConfigService(store, settings).render_live()  # bootstrap: the switch starts from this tree
    with fsdouble.FreeSwitchDouble(conf_dir / "rendered", esl_password="Pw-double", profile_uptime=60) as fs:
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # instead of waiting: let the profile age
            waits.append(seconds)
            fs.set_profile_uptime(60)

        svc = FsConfigService(
            store, replace(settings, esl_host="127.0.0.1", esl_port=fs.esl_port, esl_password="Pw-double"),
            sleep=sleep,
        )
        assert fs.place_call("nosuchdest", user="bob", password="pw-bob").code == 403

        bob = add_org(store, username="bob", password="pw-bob")
        outcome = in_thread(svc.reload)
        assert [c.command for c in outcome.commands] == ["reloadxml"]
        assert fs.place_call("nosuchdest", user="bob", password="pw-bob").code == 404  # authenticated

        update_sip(store, bob, ip_allowlist=["198.51.100.0/24"])
        outcome = in_thread(svc.reload)
        assert [c.command for c in outcome.commands] == ["reloadxml", "reloadacl"]
        bob_call = {"user": "bob", "password": "pw-bob"}
        assert fs.place_call("nosuchdest", source_ip="127.0.0.1", **bob_call).code == 403
        assert fs.place_call("nosuchdest", source_ip="198.51.100.7", **bob_call).code == 404

        # A tenant's transport rule changes nothing FreeSWITCH binds (the controller answers
        # 403 per call), so it costs no restart.
        for org in store.query("SELECT org_id FROM sip_settings"):
            update_sip(store, org["org_id"], allowed_transports=["udp"])
        assert in_thread(svc.reload).commands == []

        # Binding fewer transports is an install-wide change: restart, waited out while the
        # profile is younger than 10 s, and then until the restarted profile serves again.
        fs.set_profile_uptime(2)
        udp_only = FsConfigService(store, replace(svc.settings, sip_transports="udp"), sleep=sleep)
        outcome = in_thread(udp_only.reload)
        assert [c.command for c in outcome.commands] == ["sofia profile kallglot restart"]
        # The double counts the profile's real age, so the exact wait it asks for may vary.
        assert outcome.restarted and len(outcome.restart_waits) == 1
        assert waits == [outcome.restart_waits[0] + 1.0]
        assert outcome.profile_ready_ms is not None and outcome.profile_transports == ["udp"]
        tls = fs.place_call("nosuchdest", user="alice", password="pw-alice", transport="tls")
        assert tls.code is None and tls.transport_error
        assert fs.place_call("nosuchdest", user="alice", password="pw-alice", transport="udp").code == 404
