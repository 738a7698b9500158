"""The rendered front running for real (kamailio 5.6) in front of two fake FreeSWITCH nodes (UDP
sockets that answer OPTIONS): forged source headers are replaced, Record-Route is added, TLS on
the edge works, and a node that answers 503 or nothing hands the call to the other node, while a
503 carrying X-Call-Limit (the organization's cap, the same on every node) does not."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.kamailio.model import KamailioNode, KamailioSettings, build_input
from controller.kamailio.render import DEBIAN_MODULES, render_files, write_files

DOMAIN = "sip.example.com"
FORGED = {
    "X-Kallglot-Source-IP": "203.0.113.66",
    "x-kallglot-source-ip": "198.51.100.1",
    "X-Kallglot-Source-Proto": "tls",
    "X-AUTH-IP": "203.0.113.66",
}


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _headers(msg: str) -> list[tuple[str, str]]:
    head = msg.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    out = []
    for line in head:
        name, _, value = line.partition(":")
        out.append((name.strip(), value.strip()))
    return out


def _values(msg: str, name: str) -> list[str]:
    return [v for n, v in _headers(msg) if n.lower() == name.lower()]


def _reply(req: str, code: int, reason: str, extra: str = "") -> bytes:
    keep = [(n, v) for n, v in _headers(req) if n.lower() in ("via", "from", "to", "call-id", "cseq")]
    lines = []
    for n, v in keep:
        if n.lower() == "to" and ";tag=" not in v:
            v += ";tag=node"
        lines.append(f"{n}: {v}")
    head = f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(lines)
    return (head + f"\r\n{extra}Content-Length: 0\r\n\r\n").encode()


@dataclass
class FakeNode:
    """A FreeSWITCH stand-in: answers OPTIONS 200, hands INVITEs to ``on_invite``."""

    name: str
    on_invite: Callable[[FakeNode, str], bytes | None]
    invites: list[str] = field(default_factory=list)
    options: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = data.decode(errors="replace")
            if msg.startswith("OPTIONS "):
                self.options += 1
                self.sock.sendto(_reply(msg, 200, "OK"), addr)
            elif msg.startswith("INVITE "):
                self.invites.append(msg)
                answer = self.on_invite(self, msg)
                if answer:
                    self.sock.sendto(answer, addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


class Behaviour:
    """Per Call-ID: the first node to see a call answers ``first`` (retransmissions included);
    any other node answers 486."""

    def __init__(self, first: Callable[[str], bytes | None]) -> None:
        self.first = first
        self.first_node: dict[str, str] = {}
        self.lock = threading.Lock()

    def __call__(self, node: FakeNode, msg: str) -> bytes | None:
        call_id = _values(msg, "Call-ID")[0]
        with self.lock:
            first = self.first_node.setdefault(call_id, node.name) == node.name
        return self.first(msg) if first else _reply(msg, 486, "Busy Here")


@dataclass
class Front:
    udp_port: int
    tls_port: int
    nodes: list[FakeNode]
    behaviour: Behaviour


def _invite(call_id: str, transport: str, port: int) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:12]
    forged = "".join(f"{k}: {v}\r\n" for k, v in FORGED.items())
    return (
        f"INVITE sip:sess_abc@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} 127.0.0.1:{port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:kg1@{DOMAIN}>;tag=caller\r\n"
        f"To: <sip:sess_abc@{DOMAIN}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:kg1@127.0.0.1:{port};transport={transport}>\r\n"
        f"{forged}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _final(recv: Callable[[], bytes], deadline_s: float = 10.0) -> str:
    end = time.monotonic() + deadline_s
    buf = ""
    while time.monotonic() < end:
        buf += recv().decode(errors="replace")
        while "\r\n\r\n" in buf:
            msg, buf = buf.split("\r\n\r\n", 1)
            status = msg.split(" ", 2)
            if len(status) > 1 and status[1].isdigit() and int(status[1]) >= 200:
                return msg + "\r\n\r\n"
    raise AssertionError("no final response")


def _udp_call(front: Front, call_id: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        s.sendto(_invite(call_id, "udp", s.getsockname()[1]), ("127.0.0.1", front.udp_port))
        return _final(lambda: s.recvfrom(65535)[0])


@pytest.fixture
def front(kamailio: str, tls_pair: tuple[Path, Path], tmp_path: Path) -> Iterator[Front]:
    with _running_front(kamailio, tls_pair, tmp_path, ("up", "up")) as running:
        yield running


@contextlib.contextmanager
def _running_front(kamailio: str, tls_pair: tuple[Path, Path], tmp_path: Path,
                   states: tuple[str, str]) -> Iterator[Front]:
    behaviour = Behaviour(lambda msg: _reply(msg, 486, "Busy Here"))
    nodes = [FakeNode("fs1", behaviour), FakeNode("fs2", behaviour)]
    udp_port, tls_port = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_STREAM)
    settings = KamailioSettings(
        sip_domain=DOMAIN,
        listen=(f"udp:127.0.0.1:{udp_port}", f"tls:127.0.0.1:{tls_port}"),
        tls_certificate=str(tls_pair[0]), tls_private_key=str(tls_pair[1]),
        probe_interval_s=1, config_dir=str(tmp_path), run_dir=str(tmp_path),
    )
    k = build_input(settings, [KamailioNode(n.name, f"127.0.0.1:{n.port}", "eu", state)
                               for n, state in zip(nodes, states, strict=True)])
    write_files(render_files(k), tmp_path)
    cmd = [kamailio, "-f", str(tmp_path / "kamailio.cfg"), "-DD", "-E", "-n", "2", "-Y", str(tmp_path),
           "-P", str(tmp_path / "kamailio.pid"), "-w", str(tmp_path)]
    if DEBIAN_MODULES.is_dir():
        cmd[1:1] = ["-L", str(DEBIAN_MODULES)]
    log = (tmp_path / "kamailio.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Up once every node in service was probed (admin-disabled ones are not).
        probed = [n for n, state in zip(nodes, states, strict=True) if state == "up"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (all(n.options for n in probed) and _answers(udp_port)):
            assert proc.poll() is None, (tmp_path / "kamailio.log").read_text()[-3000:]
            time.sleep(0.2)
        assert all(n.options for n in probed), "the front never probed the nodes with OPTIONS"
        yield Front(udp_port, tls_port, nodes, behaviour)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the front and its children, which this test started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        for n in nodes:
            n.close()


def _options(port: int, timeout_s: float = 5.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout_s)
        mine = s.getsockname()[1]
        s.sendto((
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{mine};branch=z9hG4bK{uuid.uuid4().hex[:10]};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:pbx@{DOMAIN}>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: opt-{uuid.uuid4()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),
            ("127.0.0.1", port))
        return s.recvfrom(65535)[0]


def _answers(port: int) -> bool:
    try:
        return _options(port, 0.5).startswith(b"SIP/2.0 200")
    except TimeoutError:
        return False


def _seen_by(front: Front, call_id: str) -> list[str]:
    """The INVITE as each node first received it (retransmissions left out)."""
    out = []
    for n in front.nodes:
        mine = [m for m in n.invites if _values(m, "Call-ID") == [call_id]]
        out += mine[:1]
    return out


def test_front_answers_options_itself(front: Front) -> None:
    assert _options(front.udp_port).startswith(b"SIP/2.0 200")


def test_forged_source_headers_are_replaced_and_record_route_added(front: Front) -> None:
    call_id = f"c-{uuid.uuid4()}"
    assert _udp_call(front, call_id).startswith("SIP/2.0 486")
    seen = _seen_by(front, call_id)
    assert len(seen) == 1
    msg = seen[0]
    assert _values(msg, "X-Kallglot-Source-IP") == ["127.0.0.1"]
    assert _values(msg, "X-Kallglot-Source-Proto") == ["udp"]
    assert _values(msg, "X-AUTH-IP") == ["127.0.0.1"]
    assert len(_values(msg, "X-Kallglot-Source-Port")) == 1
    assert "203.0.113.66" not in msg and "198.51.100.1" not in msg
    rr = _values(msg, "Record-Route")
    assert rr and f"127.0.0.1:{front.udp_port}" in rr[0] and ";lr" in rr[0]
    assert len(_values(msg, "Via")) == 2


def test_tls_caller_is_reported_as_tls(front: Front) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the throwaway self-signed certificate
    call_id = f"t-{uuid.uuid4()}"
    with socket.create_connection(("127.0.0.1", front.tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as tls:
            tls.sendall(_invite(call_id, "tls", tls.getsockname()[1]))
            assert _final(lambda: tls.recv(65535)).startswith("SIP/2.0 486")
    msg = _seen_by(front, call_id)[0]
    assert _values(msg, "X-Kallglot-Source-Proto") == ["tls"]
    assert _values(msg, "X-Kallglot-Source-IP") == ["127.0.0.1"]
    # TLS in, UDP out: two Record-Route entries (one per side).
    assert len(_values(msg, "Record-Route")) == 2


def test_node_answering_503_fails_over(front: Front) -> None:
    front.behaviour.first = lambda msg: _reply(msg, 503, "Service Unavailable", "Retry-After: 5\r\n")
    call_id = f"f-{uuid.uuid4()}"
    assert _udp_call(front, call_id).startswith("SIP/2.0 486")
    assert len(_seen_by(front, call_id)) == 2  # both nodes were tried


def test_silent_node_fails_over_after_fr_timer(front: Front) -> None:
    front.behaviour.first = lambda msg: None
    call_id = f"s-{uuid.uuid4()}"
    started = time.monotonic()
    assert _udp_call(front, call_id).startswith("SIP/2.0 486")
    assert len(_seen_by(front, call_id)) == 2
    assert time.monotonic() - started >= 1.5  # tm's fr_timer (2 s) fired first


def test_node_dying_after_100_trying_fails_over_after_5_s(front: Front) -> None:
    """The first node sends 100 Trying and dies: the caller still gets the other node's answer,
    within the front's 5 s INVITE timer instead of tm's default minutes."""
    front.behaviour.first = lambda msg: _reply(msg, 100, "Trying")
    call_id = f"d-{uuid.uuid4()}"
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        s.sendto(_invite(call_id, "udp", s.getsockname()[1]), ("127.0.0.1", front.udp_port))
        final = _final(lambda: s.recvfrom(65535)[0], deadline_s=12)
    took = time.monotonic() - started
    assert final.startswith("SIP/2.0 486")  # the second node's answer
    assert len(_seen_by(front, call_id)) == 2
    assert 4.5 <= took < 9, took  # after the 5 s INVITE timer, not the 2 s one


def test_call_limit_503_is_not_retried(front: Front) -> None:
    front.behaviour.first = lambda msg: _reply(msg, 503, "Service Unavailable", "X-Call-Limit: 5\r\n")
    call_id = f"l-{uuid.uuid4()}"
    final = _udp_call(front, call_id)
    assert final.startswith("SIP/2.0 503") and "X-Call-Limit: 5" in final
    assert len(_seen_by(front, call_id)) == 1


def test_no_node_in_service_is_503_with_retry_after(kamailio: str, tls_pair: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    with _running_front(kamailio, tls_pair, tmp_path, ("draining", "stopped")) as running:
        final = _udp_call(running, f"n-{uuid.uuid4()}")
        assert final.startswith("SIP/2.0 503") and "Retry-After: 5" in final
        assert not any(n.invites for n in running.nodes) and not any(n.options for n in running.nodes)
