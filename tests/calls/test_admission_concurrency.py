"""The call cap under concurrency, long runs, and reconciliation after a controller crash, on
SQLite and PostgreSQL (``store_target`` / ``any_store`` in tests/conftest.py)."""

from __future__ import annotations

import multiprocessing
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from controller.calls.admission import Admitted, admit
from controller.calls.legs import end_leg, live_uuids_from_show_calls, mark_leg, reconcile
from controller.store import Store, open_store
from tests.calls.burst_worker import admit_many
from tests.calls.factories import live_leg_count, make_org, make_session, sip_channel, sip_username

ROOT = Path(__file__).resolve().parents[2]


def test_burst_of_50_across_processes_admits_exactly_the_cap(store_target: Path | str) -> None:
    db = store_target
    store = open_store(db)
    org = make_org(store, cap=5)
    user = sip_username(store, org)
    sessions = [make_session(store, org) for _ in range(50)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(5) as pool:
        go = manager.Event()
        pending = [pool.apply_async(admit_many, (str(db), org, user, sessions[i::5], go))
                   for i in range(5)]
        time.sleep(0.5)  # let the workers start and park on the event; correctness does not depend on it
        go.set()
        codes = [c for p in pending for c in p.get(timeout=120)]
    assert len(codes) == 50
    assert codes.count(200) == 5
    assert codes.count(503) == 45
    assert live_leg_count(store, org) == 5
    store.close()


def test_2000_admit_hangup_cycles_never_exceed_cap_and_leave_no_live_leg(any_store: Store) -> None:
    store = any_store
    rng = random.Random(20261121)
    cap = 4
    org = make_org(store, cap=cap)
    user = sip_username(store, org)
    sessions = [make_session(store, org) for _ in range(12)]
    live: list[str] = []
    admitted = rejected = 0
    for _ in range(2000):
        if live and rng.random() < 0.45:
            uuid = live.pop(rng.randrange(len(live)))
            assert end_leg(store, uuid, hangup_cause=rng.choice(["NORMAL_CLEARING", "USER_BUSY"])) is not None
        else:
            # Sessions end with their last leg; reopen so the pool stays usable.
            sid = rng.choice(sessions)
            reopened = store.conn.execute(
                "UPDATE sessions SET status = 'active' WHERE id = ? AND status = 'ended'", (sid,)).rowcount
            result = admit(store, sip_channel(org, user, sid))
            if isinstance(result, Admitted):
                mark_leg(store, result.leg_id, "answered")
                admitted += 1
                live.append(result.call_uuid)
            else:
                rejected += 1
                assert result.sip_code in (486, 503)
                if reopened:
                    store.conn.execute("UPDATE sessions SET status = 'ended' WHERE id = ?", (sid,))
        busy = store.query_one(
            "SELECT COUNT(DISTINCT session_id) FROM call_legs WHERE org_id = ? AND ended_at IS NULL", (org,))
        assert busy is not None and busy[0] <= cap
    for uuid in live:
        assert end_leg(store, uuid, hangup_cause="NORMAL_CLEARING") is not None
    assert admitted > 500 and rejected > 50  # both paths exercised
    assert live_leg_count(store) == 0
    open_sessions = store.query_one(
        "SELECT COUNT(*) FROM sessions s WHERE status != 'ended' AND EXISTS "
        "(SELECT 1 FROM call_legs l WHERE l.session_id = s.id)")
    assert open_sessions is not None and open_sessions[0] == 0


def test_reconcile_after_kill_9_frees_the_slots(store_target: Path | str) -> None:
    db = store_target
    store = open_store(db)
    org = make_org(store, cap=3)
    user = sip_username(store, org)
    sessions = [make_session(store, org) for _ in range(3)]
    # A "controller" that admits three calls and is then killed without cleaning up.
    script = textwrap.dedent(f"""
        import sys, time
        from controller.calls.admission import admit
        from controller.store import Store
        from tests.calls.factories import sip_channel
        store = Store({str(db)!r})
        for i, sid in enumerate({sessions!r}):
            admit(store, sip_channel({org!r}, {user!r}, sid, call_uuid=f"uuid-{{i}}"))
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert live_leg_count(store, org) == 3
    rejected = admit(store, sip_channel(org, user, make_session(store, org)))
    assert not isinstance(rejected, Admitted) and rejected.sip_code == 503

    # FreeSWITCH still has uuid-1 only; a leg younger than the grace period is left alone.
    reply = '{"row_count":1,"rows":[{"uuid":"uuid-1","direction":"inbound"}]}'
    fresh = admit(store, sip_channel(org, user, sessions[1], call_uuid="uuid-fresh"))
    assert isinstance(fresh, Admitted)
    ended = reconcile(store, live_uuids_from_show_calls(reply), now=time.time() + 1.0, grace_s=2.0)
    assert {e.call_uuid for e in ended} == set()  # all legs are younger than 2 s at now+1
    ended = reconcile(store, live_uuids_from_show_calls(reply), now=time.time() + 10.0, grace_s=2.0)
    assert {e.call_uuid for e in ended} == {"uuid-0", "uuid-2", "uuid-fresh"}
    assert all(e.session_ended for e in ended if e.call_uuid != "uuid-fresh")
    assert live_leg_count(store, org) == 1
    row = store.query_one("SELECT hangup_cause, status FROM call_legs WHERE call_uuid = 'uuid-0'")
    assert row is not None and row["hangup_cause"] == "LOST_CHANNEL" and row["status"] == "failed"
    assert isinstance(admit(store, sip_channel(org, user, make_session(store, org))), Admitted)
    store.close()


def test_show_calls_parsing() -> None:
    assert live_uuids_from_show_calls('{"row_count": 0}') == set()
    assert live_uuids_from_show_calls('{"row_count":1,"rows":[{"uuid":"a","b_uuid":"b"}]}') == {"a", "b"}
    for bad in ("-ERR no reply", "[]", ""):
        try:
            live_uuids_from_show_calls(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
