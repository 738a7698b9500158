"""The FreeSWITCH snippet of GET /v1/sip/pbx_config, pasted into a second, real FreeSWITCH
1.10.12 acting as the customer's PBX: its gateway places a call to a session on the edge, passes
digest auth with the password POST /v1/sip/credentials returned, and gets the organization's
codec and SRTP. Only the proxy's port (the test edge listens on a free port, not 5060) and the
password placeholder are changed, as the snippet's own comment tells a PBX admin to.
Real FreeSWITCH only (KALLGLOT_FREESWITCH_PREFIX): skipped elsewhere."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.demo.stack import DemoStack
from controller.domain.pbx_snippets import PASSWORD_PLACEHOLDER
from controller.esl.connection import EslError
from controller.esl.inbound import InboundClient
from tests.e2e.real_switch import PREFIX_ENV

PBX_ESL_PASSWORD = "pbx-test"  # a throwaway test switch on loopback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PBX_XML = """<?xml version="1.0"?>
<document type="freeswitch/xml">
  <section name="configuration">
    <configuration name="modules.conf"><modules>
      <load module="mod_event_socket"/>
      <load module="mod_commands"/>
      <load module="mod_sofia"/>
      <load module="mod_dialplan_xml"/>
      <load module="mod_dptools"/>
    </modules></configuration>
    <configuration name="switch.conf"><settings>
      <param name="rtp-start-port" value="{rtp_start}"/>
      <param name="rtp-end-port" value="{rtp_end}"/>
      <param name="max-sessions" value="20"/>
    </settings></configuration>
    <configuration name="event_socket.conf"><settings>
      <param name="listen-ip" value="127.0.0.1"/>
      <param name="listen-port" value="{esl_port}"/>
      <param name="password" value="{esl_password}"/>
    </settings></configuration>
    <configuration name="sofia.conf"><global_settings/><profiles>
      <profile name="pbx">
        <gateways>
          <X-PRE-PROCESS cmd="include" data="gateways/*.xml"/>
        </gateways>
        <settings>
          <param name="sip-ip" value="127.0.0.1"/>
          <param name="rtp-ip" value="127.0.0.1"/>
          <param name="sip-port" value="{sip_port}"/>
          <param name="context" value="default"/>
          <param name="dialplan" value="XML"/>
        </settings>
      </profile>
    </profiles></configuration>
  </section>
  <section name="dialplan">
    <context name="default">
      <extension name="park"><condition field="destination_number" expression=".*">
        <action application="park"/>
      </condition></extension>
    </context>
  </section>
</document>
"""


@dataclass
class Pbx:
    esl_port: int

    def api(self, command: str, timeout: float = 30) -> str:
        with InboundClient.connect("127.0.0.1", self.esl_port, PBX_ESL_PASSWORD, timeout=timeout) as esl:
            return str(esl.api(command)).strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    from tests.e2e.real_switch import available

    if not os.environ.get(PREFIX_ENV):
        pytest.skip(f"the PBX side needs a local FreeSWITCH build ({PREFIX_ENV})")
    factory, why = available()
    if factory is None:
        pytest.skip(f"real FreeSWITCH: {why}")
    with DemoStack(tmp_path_factory.mktemp("pbx-edge"), engine="passthrough", switch_factory=factory) as s:
        yield s


def _start_pbx(prefix: Path, workdir: Path, gateway_xml: str) -> tuple[Pbx, subprocess.Popen[bytes]]:
    conf = workdir / "conf"
    (conf / "gateways").mkdir(parents=True)
    esl_port = _free_port()
    (conf / "freeswitch.xml").write_text(PBX_XML.format(
        rtp_start=21000, rtp_end=21100, esl_port=esl_port, esl_password=PBX_ESL_PASSWORD,
        sip_port=_free_port()))
    (conf / "gateways" / "kallglot.xml").write_text(gateway_xml)
    dirs = {name: workdir / name for name in ("log", "db", "run", "temp")}
    for path in dirs.values():
        path.mkdir()
    argv = [str(prefix / "bin" / "freeswitch"), "-nf", "-nc", "-nonat", "-conf", str(conf),
            *[arg for name, path in dirs.items() for arg in (f"-{name}", str(path))]]
    log = (workdir / "console.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pbx = Pbx(esl_port)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (workdir / "console.log").read_text(errors="replace")[-3000:]
            try:
                if "is ready" in pbx.api("status", timeout=2):
                    return pbx, proc
            except (OSError, EslError):  # not listening yet
                pass
            assert time.monotonic() < deadline, "the PBX FreeSWITCH did not become ready"
            time.sleep(0.3)
    except BaseException:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The PBX switch this test started, and only it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_pasted_freeswitch_gateway_reaches_a_session(stack: DemoStack, tmp_path: Path) -> None:
    key = stack.api_key
    stack.configure_sip({"enabled": True, "allowed_transports": ["udp"], "require_tls": False,
                         "require_srtp": True, "allowed_codecs": ["PCMA", "PCMU"], "ip_allowlist": []},
                        key=key)
    password = str(stack.generate_credentials(key=key)["password"])
    stack.reload()
    snippet = str(stack.api_ok("GET", "/v1/sip/pbx_config", key=key)["freeswitch"])
    assert password not in snippet
    # What the PBX admin does: paste, put the password in, and (here only) point at the test port.
    edge_port = stack.fs.sip_port
    pasted = snippet.replace(PASSWORD_PLACEHOLDER, password)
    pasted = re.sub(r'(<param name="proxy" value=")[^"]*(")', rf"\g<1>127.0.0.1:{edge_port}\2", pasted)

    pbx, proc = _start_pbx(Path(os.environ[PREFIX_ENV]), tmp_path, pasted)
    try:
        assert "kallglot" in pbx.api("sofia status gateway kallglot")
        sid = str(stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}}, key=key)["id"])
        reply = pbx.api(f"originate sofia/gateway/kallglot/{sid} &park()", timeout=40)
        assert reply.startswith("+OK"), reply
        uuid = reply.split()[1]
        assert pbx.api(f"uuid_getvar {uuid} rtp_secure_audio_confirmed") == "true"
        assert pbx.api(f"uuid_getvar {uuid} rtp_use_codec_name") == "PCMA"  # the org's first codec
        assert stack.api_ok("GET", f"/v1/sessions/{sid}", key=key)["status"] in ("connecting", "active")
        pbx.api(f"uuid_kill {uuid}")
    finally:
        _stop(proc)
