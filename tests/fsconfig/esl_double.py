"""A FreeSWITCH event-socket double for reload tests: real TCP socket, real ESL framing.

Replies to the reload commands are the bytes captured from FreeSWITCH 1.10.12
(tests/fixtures/freeswitch-1.10.12/esl/inbound-reload.log) when the fixtures are present;
``script`` overrides a command's reply (a list is consumed one reply per call, e.g. a refused
restart, then OK).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

from tests.conftest import FIXTURES_DIR

RELOAD_LOG = FIXTURES_DIR / "esl" / "inbound-reload.log"

DROP = "<drop the connection>"
RESTART_REFUSED = (
    "Profile kallglot must be up for at least 10 seconds to stop/restart.\nPlease wait 8 seconds\n"
)


def captured_replies(path: Path = RELOAD_LOG) -> dict[str, list[str]]:
    """api command → FreeSWITCH's reply bodies in capture order (from the transcript)."""
    from tests.fsdouble.fixtures import read_transcript

    out: dict[str, list[str]] = {}
    pending: str | None = None
    for record in read_transcript(path):
        if not record.from_fs:
            text = record.data.decode()
            pending = text[4:].strip() if text.startswith("api ") else None
        elif pending is not None:
            head, _, body = record.data.partition(b"\n\n")
            if b"api/response" in head:
                out.setdefault(pending, []).append(body.decode())
            pending = None
    return out


def default_replies() -> dict[str, list[str]]:
    replies = {
        "reloadxml": ["+OK [Success]\n"],
        "reloadacl": ["+OK acl reloaded\n"],
        "sofia profile kallglot rescan": ["Reload XML [Success]\n+OK scan complete\n"],
        "sofia profile kallglot restart": ["Reload XML [Success]\nrestarting: kallglot"],
        # mod_sofia.c cmd_profile: "%s started successfully\n" (no "Reload XML" line without the
        # "reloadxml" argument); not in the capture.
        "sofia profile kallglot start": ["kallglot started successfully\n"],
    }
    if RELOAD_LOG.exists():
        captured = captured_replies()
        for cmd in ("reloadxml", "reloadacl", "sofia profile kallglot rescan"):
            replies[cmd] = captured[cmd][:1]
        # The capture's first restart was refused (profile younger than 10 s), the second accepted.
        replies["sofia profile kallglot restart"] = captured["sofia profile kallglot restart"][-1:]
    return replies


class EslDouble:
    """``with EslDouble(password) as fs: … fs.port … fs.commands``"""

    def __init__(self, password: str = "ClueCon",
                 script: dict[str, str | list[str] | Callable[[str], str]] | None = None) -> None:
        self.password = password
        self.script = dict(script or {})
        self.defaults = default_replies()
        self.commands: list[str] = []  # api commands received, in order
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> EslDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)

    def reply_for(self, cmd: str) -> str:
        entry = self.script.get(cmd)
        if callable(entry):
            return entry(cmd)
        if isinstance(entry, list):
            return entry.pop(0) if len(entry) > 1 else entry[0]
        if isinstance(entry, str):
            return entry
        if " killgw " in cmd:
            return "+OK gateway marked for deletion.\n"
        if cmd in self.defaults:
            return self.defaults[cmd][0]
        return f"-ERR {cmd.split(' ')[0]} Command not found!\n"

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"Content-Type: auth/request\n\n")
            buf = b""
            while True:
                while b"\n\n" not in buf:
                    try:
                        chunk = conn.recv(4096)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                raw, buf = buf.split(b"\n\n", 1)
                line = raw.decode().strip()
                if line.startswith("auth "):
                    if line[5:] == self.password:
                        conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
                        continue
                    conn.sendall(b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
                    return
                if line == "exit":
                    body = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
                    conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK bye\n\n")
                    conn.sendall(b"Content-Type: text/disconnect-notice\nContent-Length: "
                                 + str(len(body)).encode() + b"\n\n" + body)
                    return
                if line.startswith("api "):
                    cmd = line[4:]
                    self.commands.append(cmd)
                    reply = self.reply_for(cmd)
                    if reply == DROP:
                        return  # FreeSWITCH went away mid-command: close without a reply
                    body = reply.encode()
                    conn.sendall(b"Content-Type: api/response\nContent-Length: "
                                 + str(len(body)).encode() + b"\n\n" + body)
                    continue
                conn.sendall(b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")
