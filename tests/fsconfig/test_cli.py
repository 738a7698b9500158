"""``kallglot render`` and ``kallglot reload`` as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from controller.store import Store
from tests.fsconfig.esl_double import EslDouble
from tests.fsconfig.helpers import SIP_DOMAIN, add_connection, add_org, update_sip

ROOT = Path(__file__).resolve().parents[2]


def kallglot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller.cli", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
    )


def test_render_out_prints_summary_and_writes_files(store: Store, conf_dir: Path, tmp_path: Path) -> None:
    org = add_org(store, username="alice", allowlist=["10.0.0.0/8"])
    add_connection(store, org, sip={"host": "trunk.example.net", "username": "u", "password": "pw-cli-9"})
    out = tmp_path / "out"
    env = {"KALLGLOT_FS_CONF_DIR": str(conf_dir), "KALLGLOT_SIP_DOMAIN": SIP_DOMAIN}
    proc = kallglot("render", "--db", str(store.path), "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    # The organization's allowlist and kallglot_providers, which is rendered even when empty.
    assert summary["users"] == 1 and summary["acl_lists"] == 2 and summary["out"] == str(out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.xml")) == sorted(summary["files"])
    assert not (conf_dir / "rendered").exists()  # --out leaves the live tree alone
    assert "pw-cli-9" not in proc.stdout + proc.stderr


def test_render_reports_left_out_records_and_fails_on_install_settings(store: Store, conf_dir: Path) -> None:
    org = add_org(store)
    update_sip(store, org, allowed_transports=["tls", "sctp"])
    env = {"KALLGLOT_FS_CONF_DIR": str(conf_dir)}
    proc = kallglot("render", "--db", str(store.path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rejected"] == [{
        "field": f"sip_settings[{org}].allowed_transports[1]", "reason": "'sctp' is not one of tls, tcp, udp",
    }]
    live = (conf_dir / "rendered").resolve()
    proc = kallglot("render", "--db", str(store.path), env=env | {"KALLGLOT_CONTROLLER_ADDRESS": "no-port"})
    assert proc.returncode == 1
    error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "invalid_configuration" and error["field"] == "KALLGLOT_CONTROLLER_ADDRESS"
    assert (conf_dir / "rendered").resolve() == live  # the live tree is untouched


def test_reload_subprocess_against_esl_double(store: Store, conf_dir: Path) -> None:
    add_org(store)
    with EslDouble(password="Pw-cli") as fs:
        env = {"KALLGLOT_FS_CONF_DIR": str(conf_dir), "KALLGLOT_ESL_PASSWORD": "Pw-cli"}
        proc = kallglot("reload", "--db", str(store.path), "--esl-host", "127.0.0.1",
                        "--esl-port", str(fs.port), env=env)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert [c["command"] for c in result["commands"]] == fs.changes == [
            "reloadxml", "reloadacl", "sofia profile kallglot restart"]
        # It answered only once the restarted profile served again (polled over ESL).
        assert fs.status_polls >= 1 and result["profile_ready_ms"] >= 150
        assert result["profile_transports"] == ["tcp", "tls", "udp"]
        fs.script["reloadxml"] = "-ERR nope\n"
        add_org(store)
        proc = kallglot("reload", "--db", str(store.path), "--esl-host", "127.0.0.1",
                        "--esl-port", str(fs.port), env=env)
    assert proc.returncode == 1
    error = json.loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert error["code"] == "freeswitch_reload_failed" and error["reply"] == "-ERR nope\n"
    assert "Pw-cli" not in proc.stderr
