"""A minimal SIP caller (UAC) for the real-FreeSWITCH end-to-end tests: one INVITE with an SDP
offer, the 407 digest challenge answered like sipp does (qop=auth, MD5), ACK, BYE.

UDP, TCP or TLS (stream framing by Content-Length), no retransmissions (127.0.0.1); RTP when
an ``RtpEndpoint`` (tests/e2e/rtp.py) is given: its port goes into the offer, and it starts
towards the answer's address with the codec the answer chose. Message layout follows the sipp
traces captured against FreeSWITCH 1.10.12 (fixtures/sip/*.sip.log); the digest is checked
against one of them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field

from tests.e2e.rtp import RtpEndpoint

PAYLOAD_TYPES = {"PCMU": "0", "PCMA": "8", "G722": "9", "OPUS": "96"}
RTPMAP = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/8000", "OPUS": "opus/48000/2"}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_response(*, user: str, realm: str, password: str, method: str, uri: str, nonce: str,
                    cnonce: str, nc: str = "00000001", qop: str = "auth") -> str:
    """RFC 2617 digest with qop=auth, as FreeSWITCH verifies it."""
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def parse_challenge(value: str) -> dict[str, str]:
    """``Digest realm="x", nonce="y", …`` → {realm: x, nonce: y, …}."""
    _, _, params = value.partition(" ")
    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', params)}


@dataclass
class SipMessage:
    first_line: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    @property
    def status(self) -> int:
        parts = self.first_line.split(" ", 2)
        return int(parts[1]) if self.first_line.startswith("SIP/2.0") else 0

    @property
    def reason(self) -> str:
        return self.first_line.split(" ", 2)[2] if self.status else ""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @classmethod
    def parse(cls, raw: bytes) -> SipMessage:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", errors="replace").split("\r\n")
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        return cls(lines[0], headers, body)


@dataclass
class CallResult:
    code: int | None = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    challenged: bool = False
    srtp: bool = False
    answer_sdp: str = ""
    codec: str = ""  # the first audio codec of the answer (what both sides then use)
    error: str = ""


def answer_media(sdp: str) -> tuple[tuple[str, int], str]:
    """((address, port), codec) of the audio stream an SDP answer describes."""
    host = re.search(r"(?m)^c=IN IP4 (\S+)", sdp)
    media = re.search(r"(?m)^m=audio (\d+) \S+ (\d+)", sdp)
    if not host or not media:
        raise ValueError(f"no audio stream in the answer: {sdp!r}")
    payload_type = media.group(2)
    rtpmap = re.search(rf"(?m)^a=rtpmap:{payload_type} ([^/\s]+)", sdp)
    codec = rtpmap.group(1).upper() if rtpmap else next(
        (c for c, pt in PAYLOAD_TYPES.items() if pt == payload_type), payload_type)
    return (host.group(1), int(media.group(1))), codec


class SipTransport:
    """One socket to the switch: datagrams (UDP) or a TLS stream."""

    def __init__(self, server: tuple[str, int], transport: str, timeout: float) -> None:
        self.server = server
        self.transport = transport
        self._buf = b""
        if transport == "udp":
            self.sock: socket.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            raw = socket.create_connection(server, timeout=timeout)
            if transport == "tls":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # the test install's self-signed certificate
                raw = ctx.wrap_socket(raw)
            self.sock = raw
        self.sock.settimeout(timeout)
        self.local_port = int(self.sock.getsockname()[1])

    def send(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def receive(self) -> SipMessage:
        if self.transport == "udp":
            data, _ = self.sock.recvfrom(65535)
            return SipMessage.parse(data)
        while b"\r\n\r\n" not in self._buf:
            self._read()
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        while len(rest) < length:
            self._read()
            head, _, rest = self._buf.partition(b"\r\n\r\n")
        self._buf = rest[length:]
        return SipMessage.parse(head + b"\r\n\r\n" + rest[:length])

    def _read(self) -> None:
        chunk = self.sock.recv(65535)
        if not chunk:
            raise ConnectionError("the switch closed the SIP connection")
        self._buf += chunk

    def close(self) -> None:
        self.sock.close()


class SipCall:
    """``SipCall(...).invite()`` places the call; ``bye()`` ends an answered one."""

    def __init__(self, server: tuple[str, int], destination: str, domain: str, *, user: str | None,
                 password: str | None, transport: str = "udp", codecs: tuple[str, ...] = ("PCMU", "PCMA"),
                 crypto: bool = False, headers: dict[str, str] | None = None, timeout: float = 10.0,
                 rtp: RtpEndpoint | None = None) -> None:
        self.t = SipTransport(server, transport, timeout)
        self.rtp = rtp
        self.uri = f"sip:{destination}@{domain}"
        self.domain = domain
        self.user, self.password = user, password
        self.codecs, self.crypto = codecs, crypto
        self.extra = dict(headers or {})
        self.call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        self.from_tag = secrets.token_hex(5)
        self.to_tag = ""
        self.cseq = 0
        self.remote_target = self.uri
        # Through a proxy that Record-Routes (the Kamailio front): ACK and BYE carry these Route
        # headers, or the proxy has no route for them (RFC 3261 12.1.2: the answer's
        # Record-Route, reversed).
        self.route_set: list[str] = []
        self.timeout = timeout

    # ------------------------------------------------------------------ messages
    def _via(self, branch: str) -> str:
        proto = self.t.transport.upper()
        return f"SIP/2.0/{proto} 127.0.0.1:{self.t.local_port};branch=z9hG4bK-{branch};rport"

    def _request(self, method: str, uri: str, branch: str, cseq: int, extra: list[tuple[str, str]],
                 body: str = "") -> bytes:
        to = f"<{self.uri}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        user = self.user or "anonymous"
        lines = [f"{method} {uri} SIP/2.0", f"Via: {self._via(branch)}",
                 f"From: <sip:{user}@{self.domain}>;tag={self.from_tag}", f"To: {to}",
                 f"Call-ID: {self.call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{user}@127.0.0.1:{self.t.local_port};transport={self.t.transport}>",
                 "Max-Forwards: 70", "User-Agent: kallglot-e2e"]
        lines += [f"{k}: {v}" for k, v in extra]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def sdp(self) -> str:
        proto = "RTP/SAVP" if self.crypto else "RTP/AVP"
        pts = [PAYLOAD_TYPES[c] for c in self.codecs] + ["101"]
        lines = ["v=0", "o=kallglot 53655765 2353687637 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
                 "t=0 0", f"m=audio {self.rtp.port if self.rtp else 16700} {proto} {' '.join(pts)}"]
        lines += [f"a=rtpmap:{PAYLOAD_TYPES[c]} {RTPMAP[c]}" for c in self.codecs]
        lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20"]
        if self.crypto:
            lines.append("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz")
        return "\r\n".join(lines) + "\r\n"

    def _final(self, method: str) -> SipMessage:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = self.t.receive()
            if msg.status == 0:  # a request from the switch (e.g. BYE) while we wait: accept it
                self._answer_request(msg)
                continue
            if (msg.header("CSeq") or "").endswith(method) and msg.status >= 200:
                return msg
        raise TimeoutError(f"no final response to {method}")

    def _answer_request(self, msg: SipMessage) -> None:
        lines = ["SIP/2.0 200 OK"] + [f"{k}: {v}" for k, v in msg.headers
                                      if k.lower() in ("via", "from", "to", "call-id", "cseq")]
        self.t.send(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())

    def _routes(self) -> list[tuple[str, str]]:
        return [("Route", r.strip()) for r in self.route_set]

    # ------------------------------------------------------------------ the call
    def invite(self) -> CallResult:
        result = CallResult()
        try:
            self._invite(result)
        except (OSError, TimeoutError, ConnectionError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        return result

    def _invite(self, result: CallResult) -> None:
        auth: list[tuple[str, str]] = [*self.extra.items()]
        for attempt in range(3):
            self.cseq += 1
            branch = secrets.token_hex(6)
            self.t.send(self._request("INVITE", self.uri, branch, self.cseq, auth, self.sdp()))
            final = self._final("INVITE")
            tag = re.search(r"tag=([^;>\s]+)", final.header("To") or "")
            self.to_tag = tag.group(1) if tag else ""
            if final.status >= 300:
                self.t.send(self._request("ACK", self.uri, branch, self.cseq, []))
            challenge = final.header("Proxy-Authenticate")
            c = parse_challenge(challenge) if challenge else {}
            # Answer the first challenge, and one more only when it says the nonce was stale
            # (RFC 2617: retry with the new nonce, the credentials were right): FreeSWITCH answers
            # a nonce it never issued so, e.g. when a front fails the INVITE over to another node.
            again = attempt == 0 or (attempt == 1 and c.get("stale", "").lower() == "true")
            if final.status == 407 and challenge and again and self.user and self.password:
                result.challenged = True
                cnonce = secrets.token_hex(4)
                response = digest_response(user=self.user, realm=c["realm"], password=self.password,
                                           method="INVITE", uri=self.uri, nonce=c["nonce"], cnonce=cnonce)
                auth = [*self.extra.items(), ("Proxy-Authorization",
                        f'Digest username="{self.user}",realm="{c["realm"]}",cnonce="{cnonce}",nc=00000001,'
                        f'qop=auth,uri="{self.uri}",nonce="{c["nonce"]}",response="{response}",algorithm=MD5')]
                self.to_tag = ""
                continue
            result.code, result.reason = final.status, final.reason
            result.headers = {k: v for k, v in final.headers}
            if final.status == 200:
                result.answer_sdp = final.body.decode(errors="replace")
                result.srtp = "RTP/SAVP" in result.answer_sdp and "a=crypto" in result.answer_sdp
                if self.rtp is not None:
                    remote, result.codec = answer_media(result.answer_sdp)
                    self.rtp.start(remote, result.codec)
                else:
                    codec = re.search(r"(?m)^a=rtpmap:\d+ ([^/\s]+)", result.answer_sdp)
                    result.codec = codec.group(1).upper() if codec else ""
                contact = re.search(r"<([^>]+)>", final.header("Contact") or "")
                self.remote_target = contact.group(1) if contact else self.uri
                self.route_set = [r for k, v in reversed(final.headers) if k.lower() == "record-route"
                                  for r in reversed(re.findall(r"<[^>]+>[^,]*", v))]
                self.t.send(self._request("ACK", self.remote_target, secrets.token_hex(6), self.cseq,
                                          self._routes()))
            return

    def wait_bye(self, timeout: float) -> bool:
        """Wait for the switch's BYE (e.g. an RTP timeout) and answer it 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.t.receive()
            except (OSError, TimeoutError, ConnectionError):
                continue
            if msg.status == 0:
                self._answer_request(msg)
                if (msg.header("CSeq") or "").endswith("BYE"):
                    self.close()
                    return True
        return False

    def bye(self) -> int | None:
        self.cseq += 1
        try:
            self.t.send(self._request("BYE", self.remote_target, secrets.token_hex(6), self.cseq,
                                      self._routes()))
            return self._final("BYE").status
        except (OSError, TimeoutError, ConnectionError):
            return None
        finally:
            self.close()

    def close(self) -> None:
        if self.rtp is not None:
            self.rtp.stop()
        self.t.close()
