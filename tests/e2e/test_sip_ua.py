"""The e2e SIP caller checked against FreeSWITCH's captured replies and a scripted UDP switch."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES_DIR
from tests.e2e.sip_ua import SipCall, SipMessage, digest_response, parse_challenge

SIP_LOG = FIXTURES_DIR / "sip" / "outbound-call-udp.sip.log"


def _messages(path: Path) -> list[bytes]:
    """The SIP messages of a sipp -trace_msg log (a `[N] bytes:` line, a blank line, N bytes)."""
    raw = path.read_bytes()
    out = []
    pos = 0
    while True:
        idx = raw.find(b" bytes:\n", pos)
        if idx < 0:
            return out
        n = int(raw[raw.rfind(b"[", 0, idx) + 1: raw.rfind(b"]", 0, idx)])
        start = idx + len(b" bytes:\n\n")
        out.append(raw[start:start + n])
        pos = start + n


@pytest.mark.skipif(not SIP_LOG.exists(), reason="FreeSWITCH fixtures not present")
def test_digest_matches_the_one_freeswitch_accepted() -> None:
    msgs = [SipMessage.parse(m) for m in _messages(SIP_LOG)]
    challenge = next(m for m in msgs if m.status == 407)
    c = parse_challenge(challenge.header("Proxy-Authenticate") or "")
    assert (c["realm"], c["qop"], c["algorithm"]) == ("sip.fixture.test", "auth", "MD5")
    sent = next(m for m in msgs if m.header("Proxy-Authorization"))
    a = parse_challenge(sent.header("Proxy-Authorization") or "")
    expected = digest_response(user="kgfixture", realm=c["realm"], password="fixture-pass-123",
                               method="INVITE", uri=a["uri"], nonce=c["nonce"], cnonce=a["cnonce"])
    assert expected == a["response"]
    answered = next(m for m in msgs if m.status == 200 and (m.header("CSeq") or "").endswith("INVITE"))
    assert answered.reason == "OK" and b"m=audio" in answered.body


class _ScriptedSwitch(threading.Thread):
    """407 to the first INVITE, then checks the digest: 200 if right, 403 if wrong."""

    def __init__(self, password: str) -> None:
        super().__init__(daemon=True)
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.address = self.sock.getsockname()
        self.seen: list[str] = []

    def reply(self, req: SipMessage, code: str, addr: tuple[str, int], extra: str = "",
              body: str = "") -> None:
        keep = "".join(f"{k}: {v}\r\n" for k, v in req.headers
                       if k in ("Via", "From", "To", "Call-ID", "CSeq"))
        msg = f"SIP/2.0 {code}\r\n{keep}{extra}Content-Length: {len(body)}\r\n\r\n{body}"
        self.sock.sendto(msg.encode(), addr)

    def run(self) -> None:
        try:
            while True:
                data, addr = self.sock.recvfrom(65535)
                req = SipMessage.parse(data)
                self.seen.append(req.first_line.split(" ")[0])
                if req.first_line.startswith("INVITE"):
                    auth = req.header("Proxy-Authorization")
                    if auth is None:
                        self.reply(req, "407 Proxy Authentication Required", addr,
                                   'Proxy-Authenticate: Digest realm="r.test", nonce="n1", '
                                   'algorithm=MD5, qop="auth"\r\n')
                        continue
                    a = parse_challenge(auth)
                    ok = a["response"] == digest_response(
                        user=a["username"], realm="r.test", password=self.password, method="INVITE",
                        uri=a["uri"], nonce="n1", cnonce=a["cnonce"])
                    if ok:
                        self.reply(req, "200 OK", addr, "Contact: <sip:s@127.0.0.1>\r\n",
                                   "v=0\r\nm=audio 1 RTP/SAVP 0\r\n"
                                   "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n")
                    else:
                        self.reply(req, "403 Forbidden", addr)
                elif req.first_line.startswith("BYE"):
                    self.reply(req, "200 OK", addr)
        except OSError:
            return


@pytest.mark.parametrize(("password", "code"), [("right", 200), ("wrong", 403)])
def test_challenge_answer_ack_and_bye_against_a_scripted_switch(password: str, code: int) -> None:
    switch = _ScriptedSwitch("right")
    switch.start()
    call = SipCall(switch.address, "sess_x", "r.test", user="u", password=password, crypto=True, timeout=5)
    result = call.invite()
    assert (result.challenged, result.code, result.error) == (True, code, "")
    if code == 200:
        assert result.srtp
        assert call.bye() == 200
        assert switch.seen == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    else:
        call.close()
        deadline = time.monotonic() + 5
        while len(switch.seen) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)  # the switch thread may not have read the last ACK yet
        assert switch.seen == ["INVITE", "ACK", "INVITE", "ACK"]
    switch.sock.close()
