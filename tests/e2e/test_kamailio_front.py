"""The rendered Kamailio front in front of a real FreeSWITCH 1.10.12 and the whole edge, with
KALLGLOT_SIP_TRUSTED_PROXIES naming the front: the organization's allowlist and TLS rule judge
the caller, not the front, at both layers (sofia's auth-acl through apply-proxy-acl + X-AUTH-IP,
and admission through X-Kallglot-Source-*), and forged headers sent around the front are ignored.

The front listens on 127.0.0.2 (loopback, a second address) so that the switch can tell it from
the callers on 127.0.0.1. Real FreeSWITCH only: the double does not model apply-proxy-acl.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.demo.stack import DemoStack
from controller.kamailio.model import KamailioNode, KamailioSettings, build_input
from controller.kamailio.render import DEBIAN_MODULES, kamailio_binary, render_files, write_files
from tests.e2e.sip_ua import CallResult, SipCall

FRONT_IP = "127.0.0.2"

pytestmark = pytest.mark.skipif(kamailio_binary() is None or shutil.which("openssl") is None,
                                reason="kamailio (Debian kamailio + kamailio-tls-modules) or openssl missing")


@dataclass
class Fronted:
    stack: DemoStack
    key: str
    username: str
    password: str
    udp_port: int
    tls_port: int
    workdir: Path

    def configure(self, **settings: object) -> None:
        body: dict[str, object] = {"enabled": True, "ip_allowlist": [], "require_tls": False,
                                   "allowed_transports": ["tls", "tcp", "udp"]}
        self.stack.configure_sip(body | settings, key=self.key)

    def call(self, *, via_front: bool = True, transport: str = "udp",
             headers: dict[str, str] | None = None) -> CallResult:
        created = self.stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}}, key=self.key)
        sid = str(created["id"])
        if via_front:
            server = (FRONT_IP, self.tls_port if transport == "tls" else self.udp_port)
        else:
            fs = self.stack.fs
            server = ("127.0.0.1", fs.tls_port if transport == "tls" else fs.sip_port)
        call = SipCall(server, sid, self.stack.sip_domain, user=self.username, password=self.password,
                       transport=transport, headers=headers)
        result = call.invite()
        if result.code == 200:  # hang up through the API (the test UA keeps no Route set)
            self.stack.api_ok("POST", f"/v1/sessions/{sid}/end", {}, key=self.key)
        call.close()
        return result

    def admission_lines(self) -> list[dict[str, object]]:
        out = []
        for log in self.workdir.rglob("controller.log"):
            for line in log.read_text(errors="replace").splitlines():
                start = line.find('{"event":"call_admission"')
                if start >= 0:
                    out.append(json.loads(line[start:]))
        return out


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((FRONT_IP, 0))
        return int(s.getsockname()[1])


def _answers_options(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        mine = s.getsockname()[1]
        s.sendto((f"OPTIONS sip:{FRONT_IP}:{port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{mine};branch=z9hG4bK{time.monotonic_ns()};rport\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\n"
                  f"To: <sip:{FRONT_IP}>\r\nCall-ID: probe-{time.monotonic_ns()}\r\n"
                  "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), (FRONT_IP, port))
        try:
            return s.recvfrom(65535)[0].startswith(b"SIP/2.0 200")
        except TimeoutError:
            return False


@contextlib.contextmanager
def _front(workdir: Path, node_port: int, domain: str) -> Iterator[tuple[int, int]]:
    cert, key = workdir / "front-cert.pem", workdir / "front-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=front.test"],
                   check=True, capture_output=True, timeout=60)
    udp_port, tls_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    settings = KamailioSettings(
        sip_domain=domain, listen=(f"udp:{FRONT_IP}:{udp_port}", f"tls:{FRONT_IP}:{tls_port}"),
        tls_certificate=str(cert), tls_private_key=str(key), probe_interval_s=2,
        config_dir=str(workdir), run_dir=str(workdir))
    node = KamailioNode("fs1", f"127.0.0.1:{node_port}")
    write_files(render_files(build_input(settings, [node])), workdir)
    exe = kamailio_binary()
    assert exe is not None
    cmd = [exe, "-f", str(workdir / "kamailio.cfg"), "-DD", "-E", "-n", "2", "-Y", str(workdir),
           "-P", str(workdir / "kamailio.pid"), "-w", str(workdir)]
    if DEBIAN_MODULES.is_dir():
        cmd[1:1] = ["-L", str(DEBIAN_MODULES)]
    log = (workdir / "kamailio.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not _answers_options(udp_port):
            assert proc.poll() is None, (workdir / "kamailio.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the front does not answer OPTIONS"
        yield udp_port, tls_port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the front and its children, started here
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def fronted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fronted]:
    from tests.e2e.real_switch import available

    factory, why = available()
    if factory is None:
        pytest.skip(f"real FreeSWITCH: {why}")
    workdir = tmp_path_factory.mktemp("kamailio-front")
    with pytest.MonkeyPatch.context() as mp:
        # Read by every process of the stack: the renderer (apply-proxy-acl) and the controller.
        mp.setenv("KALLGLOT_SIP_TRUSTED_PROXIES", f"{FRONT_IP}/32")
        with DemoStack(workdir, engine="passthrough", switch_factory=factory) as stack:
            stack.api_ok("PATCH", "/v1/sip", {"enabled": True}, key=stack.api_key)
            creds = stack.generate_credentials(key=stack.api_key)
            stack.reload()
            with _front(workdir, stack.fs.sip_port, stack.sip_domain) as (udp_port, tls_port):
                yield Fronted(stack, stack.api_key, str(creds["username"]), str(creds["password"]),
                              udp_port, tls_port, workdir)


def test_allowlisted_caller_through_the_front_is_answered(fronted: Fronted) -> None:
    fronted.configure(ip_allowlist=["127.0.0.1/32"])
    result = fronted.call()
    assert (result.challenged, result.code) == (True, 200), result
    admitted = fronted.admission_lines()[-1]
    assert admitted["outcome"] == "admitted" and admitted["via_proxy"] == FRONT_IP
    assert (admitted["source_ip"], admitted["transport"]) == ("127.0.0.1", "udp")


def test_caller_outside_the_allowlist_through_the_front_is_403(fronted: Fronted) -> None:
    fronted.configure(ip_allowlist=["203.0.113.0/24"])
    before = len(fronted.admission_lines())
    result = fronted.call()
    assert (result.challenged, result.code) == (True, 403), result
    # sofia refused it (auth-acl checked X-AUTH-IP): the controller never saw the call.
    assert len(fronted.admission_lines()) == before


def test_the_fronts_own_address_in_the_list_admits_nobody_else(fronted: Fronted) -> None:
    # sofia lets the INVITE through (the packet's address is in auth-acl); admission refuses it.
    fronted.configure(ip_allowlist=[f"{FRONT_IP}/32"])
    result = fronted.call()
    assert result.code == 403, result
    last = fronted.admission_lines()[-1]
    assert last["outcome"] == "rejected" and "ip_allowlist" in str(last["reason"])


def test_forged_headers_around_the_front_are_ignored(fronted: Fronted) -> None:
    fronted.configure(ip_allowlist=["203.0.113.0/24"])
    forged = {"X-Kallglot-Source-IP": "203.0.113.9", "X-AUTH-IP": "203.0.113.9",
              "X-Kallglot-Source-Proto": "tls"}
    before = len(fronted.admission_lines())
    result = fronted.call(via_front=False, headers=forged)
    assert result.code == 403, result
    lines = fronted.admission_lines()[before:]
    # With apply-proxy-acl set, sofia no longer refuses a direct caller outside auth-acl
    # (sofia_reg.c sofia_reg_parse_auth): the call reaches admission, which refuses it by the
    # packet's address and ignores the forged headers.
    assert lines, "sofia refused it itself: its auth-acl fall-through is not what docs/kamailio.md says"
    assert lines[-1]["outcome"] == "rejected" and lines[-1]["source_ip"] == "127.0.0.1"
    assert "via_proxy" not in lines[-1] and "ip_allowlist" in str(lines[-1]["reason"])


def test_tls_to_the_front_satisfies_require_tls(fronted: Fronted) -> None:
    fronted.configure(require_tls=True, allowed_transports=["tls"])
    assert fronted.call(transport="tls").code == 200
    plain = fronted.call(transport="udp")
    assert plain.code == 403, plain
    assert fronted.admission_lines()[-1]["reason"] == "transport udp not allowed"
