"""The real ``kallglot`` console script, as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from controller.store import open_store

KALLGLOT = Path(sys.executable).with_name("kallglot")


def run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KALLGLOT_DB": str(db)}
    return subprocess.run(
        [str(KALLGLOT), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_org_and_key_lifecycle(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    made = run(db, "org", "create", "Acme Corp")
    assert made.returncode == 0, made.stderr
    org = json.loads(made.stdout)
    assert org["id"].startswith("org_") and org["name"] == "Acme Corp"
    listed = json.loads(run(db, "org", "list").stdout)
    assert [o["id"] for o in listed["data"]] == [org["id"]]

    live = json.loads(run(db, "key", "create", "--org", org["id"]).stdout)
    test = json.loads(run(db, "key", "create", "--org", org["id"], "--test").stdout)
    assert live["id"].startswith("key_") and live["key"].startswith("sk_live_")
    assert test["key"].startswith("sk_test_")

    keys = run(db, "key", "list", "--org", org["id"])
    assert live["key"] not in keys.stdout and test["key"] not in keys.stdout
    data = json.loads(keys.stdout)["data"]
    assert [k["prefix"] for k in data] == [live["key"][:12], test["key"][:12]]

    revoked = json.loads(run(db, "key", "revoke", live["id"]).stdout)
    assert revoked["revoked_at"] is not None

    store = open_store(db)
    try:
        hashes = {r["key_hash"] for r in store.query("SELECT key_hash FROM api_keys")}
        assert hashes == {hashlib.sha256(k.encode()).hexdigest() for k in (live["key"], test["key"])}
        sip = store.query_one("SELECT * FROM sip_settings WHERE org_id = ?", (org["id"],))
        assert sip["enabled"] == 0 and sip["username"].isalnum() and sip["a1_hash"] is None
    finally:
        store.close()


def test_bad_org_id_is_a_json_error(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    for args in (
        ("key", "create", "--org", "org_missing"),
        ("key", "list", "--org", "org_missing"),
        ("key", "revoke", "key_missing"),
    ):
        res = run(db, *args)
        assert res.returncode == 1
        assert res.stdout == ""
        assert json.loads(res.stderr)["error"]["code"] == "resource_missing"
    blank = run(db, "org", "create", "  ")
    assert blank.returncode == 1 and json.loads(blank.stderr)["error"]["param"] == "name"
    assert json.loads(run(db, "org", "list").stdout)["data"] == []  # nothing half-written


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kallglot_api_serves_the_v1_api(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    org = json.loads(run(db, "org", "create", "Acme").stdout)
    key = json.loads(run(db, "key", "create", "--org", org["id"]).stdout)["key"]
    port = _free_port()
    env = {
        **os.environ,
        "KALLGLOT_DB": str(db),
        "KALLGLOT_SIP_DOMAIN": "sip.cli.example",
        "KALLGLOT_API_PORT": str(port),
    }
    proc = subprocess.Popen(
        [str(KALLGLOT), "api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        auth = {"Authorization": f"Bearer {key}"}
        assert (
            requests.patch(f"{base}/v1/sip", json={"enabled": True}, headers=auth, timeout=10).status_code
            == 200
        )
        created = requests.post(
            f"{base}/v1/sessions", json={"routing": {"type": "sip"}}, headers=auth, timeout=10
        )
        assert created.status_code == 201, created.text
        assert created.json()["sip"]["uri"] == f"sip:{created.json()['id']}@sip.cli.example"
        # Routes owned by other parts are mounted by `kallglot api` (any answer but 404).
        dial = requests.post(
            f"{base}/v1/sessions/{created.json()['id']}/dial",
            json={"to": "+4930123456"},
            headers=auth,
            timeout=10,
        )
        reload_ = requests.post(f"{base}/admin/reload", timeout=10)
        for resp in (dial, reload_):
            assert resp.status_code != 404, resp.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert key not in out  # the key never reaches the logs
