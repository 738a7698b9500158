"""Settings written through the API render into a valid FreeSWITCH tree (`kallglot render --out`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from tests.api.server import SIP_DOMAIN, ApiServer
from tests.api.test_cli import KALLGLOT


def test_api_settings_render_for_freeswitch(api: ApiServer, tmp_path: Path) -> None:
    org = api.org()
    sip = api.call(
        "PATCH",
        "/v1/sip",
        org,
        body={
            "enabled": True,
            "ip_allowlist": ["198.51.100.0/24", "2001:db8::7"],
            "allowed_codecs": ["PCMA", "OPUS"],
        },
    )
    assert sip.status_code == 200, sip.text
    creds = api.call("POST", "/v1/sip/credentials", org).json()
    con = api.call(
        "POST",
        "/v1/connections",
        org,
        body={
            "provider": "telnyx",
            "name": "Telnyx",
            "credentials": {"api_key": "KEY0123456789abcdef"},
            "sip": {"host": "sip.telnyx.example", "username": "acmetrunk", "password": "gw-pass-123"},
            "inbound_addresses": ["192.0.2.0/28"],
            "is_default": True,
        },
    ).json()
    api.call("POST", "/v1/phone_numbers", org, body={"number": "+4930555000", "connection_id": con["id"]})

    out = tmp_path / "rendered"
    env = {**os.environ, "KALLGLOT_DB": str(api.store.target), "KALLGLOT_SIP_DOMAIN": SIP_DOMAIN}
    res = subprocess.run(
        [str(KALLGLOT), "render", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    json.loads(res.stdout)

    tree = "\n".join(p.read_text() for p in sorted(out.rglob("*")) if p.is_file())
    a1 = hashlib.md5(f"{creds['username']}:{SIP_DOMAIN}:{creds['password']}".encode()).hexdigest()
    for expected in (
        creds["username"],
        a1,
        "198.51.100.0/24",
        "2001:db8::7",
        "sip.telnyx.example",
        "192.0.2.0/28",
    ):
        assert expected in tree, expected
    assert creds["password"] not in tree  # only the a1-hash ever reaches FreeSWITCH
    assert "KEY0123456789abcdef" not in tree  # the provider's API key is not FreeSWITCH's business
