"""Capture what a real FreeSWITCH 1.10.12 tells an inbound ESL listener about digest auth.

``KALLGLOT_FREESWITCH_PREFIX=/opt/kallglot/freeswitch python -m tests.e2e.capture_auth_events OUT``
starts the e2e edge on a real switch (tests/e2e/real_switch.py picks free ports), subscribes
``event plain CUSTOM sofia::pre_register sofia::register_failure`` on a raw inbound socket and
places the fixture's auth calls with tests/e2e/sip_ua.py. The transcript is written in the
fixture format (tests/fixtures/freeswitch-1.10.12/README.md "Formats"), every byte as received.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from controller.demo.stack import DemoStack
from tests.e2e.real_switch import available

SUBSCRIPTION = b"event plain CUSTOM sofia::pre_register sofia::register_failure\n\n"


class RawListener:
    """An inbound ESL client that logs every frame byte for byte (fixture transcript format)."""

    def __init__(self, port: int, password: str, out: list[bytes]) -> None:
        self.out = out
        self.t0 = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.lock = threading.Lock()
        self.frames: list[bytes] = []
        self._closed = False
        self._recv_frame()  # auth/request
        self.send(f"auth {password}\n\n".encode(), shown=b"auth ClueCon\n\n")
        self._recv_frame()
        self.send(SUBSCRIPTION)
        self._recv_frame()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _stamp(self) -> str:
        return f"{time.monotonic() - self.t0:.3f}"

    def note(self, text: str) -> None:
        with self.lock:
            self.out.append(f"### {text}\n".encode())

    def send(self, data: bytes, shown: bytes | None = None) -> None:
        # The password is never written: the record shows FreeSWITCH's stock one, as the fixtures do.
        shown = data if shown is None else shown
        with self.lock:
            self.out.append(f">>> client→FS {len(shown)} bytes @{self._stamp()}s\n".encode() + shown + b"\n")
        self.sock.sendall(data)

    def _read_more(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _recv_frame(self) -> bytes | None:
        while b"\n\n" not in self.buf:
            if not self._read_more():
                return None
        head, _, rest = self.buf.partition(b"\n\n")
        length = 0
        for line in head.split(b"\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(rest) < length:
            if not self._read_more():
                return None
            head, _, rest = self.buf.partition(b"\n\n")
        frame = head + b"\n\n" + rest[:length]
        self.buf = rest[length:]
        with self.lock:
            self.out.append(f"<<< FS→client {len(frame)} bytes @{self._stamp()}s\n".encode() + frame + b"\n")
            self.frames.append(frame)
        return frame

    def _pump(self) -> None:
        self.sock.settimeout(None)
        try:
            while not self._closed and self._recv_frame() is not None:
                pass
        except OSError:
            return

    def close(self) -> None:
        self._closed = True
        self.sock.close()


def main(out_path: Path) -> int:
    factory, why = available()
    if factory is None:
        print(f"no real FreeSWITCH: {why}", file=sys.stderr)
        return 2
    out: list[bytes] = [
        b"# fscapture ESL transcript v1\n",
        b"# scenario: inbound-events-sofia-auth\n",
        b"# sofia's CUSTOM auth events while INVITEs are challenged (407) and refused (403)\n",
        b"# inbound ESL: client connected to FreeSWITCH (real 1.10.12, tests/e2e/capture_auth_events.py)\n",
        b"# record = marker line, then exactly <n> bytes as on the wire, then one separator \\n (not data)\n",
    ]
    with tempfile.TemporaryDirectory() as tmp, \
            DemoStack(Path(tmp), engine="passthrough", switch_factory=factory) as stack:
        key = stack.api_key
        stack.api_ok("PATCH", "/v1/sip", {"enabled": True}, key=key)
        creds = stack.generate_credentials(key=key)
        user, password = str(creds["username"]), str(creds["password"])
        stack.reload()

        def new_session() -> str:
            return str(stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}}, key=key)["id"])

        sid = new_session()
        listener = RawListener(stack.esl_port, stack.esl_password, out)

        def call(label: str, dest: str, **spec: object) -> None:
            listener.note(f"--- call {label}: {spec.get('user') or 'no credentials'} -> {dest}")
            result = stack.fs.place_call(dest, domain=stack.sip_domain, **spec)
            time.sleep(0.3)  # the listener's events trail the caller's final response slightly
            listener.note(f"    caller saw {result.code} {result.reason} (challenged={result.challenged})")
            if result.code == 200:
                result.hangup()
            time.sleep(0.5)

        call("auth-no-credentials", sid)
        call("auth-wrong-password", sid, user=user, password="not-the-password")
        call("auth-unknown-user", sid, user="nosuchuser", password="whatever")
        call("unknown-destination", "nosuchdest", user=user, password=password)
        call("auth-ok", sid, user=user, password=password)
        listener.note("--- PATCH /v1/sip ip_allowlist=[203.0.113.0/24] + reload (127.0.0.1 now outside "
                      "auth-acl)")
        stack.configure_sip({"ip_allowlist": ["203.0.113.0/24"]}, key=key)
        call("auth-acl-denied", new_session(), user=user, password=password)
        time.sleep(1.0)
        listener.close()
    out_path.write_bytes(b"".join(out))
    print(f"wrote {out_path} ({len(listener.frames)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "inbound-events-sofia-auth.log")))
