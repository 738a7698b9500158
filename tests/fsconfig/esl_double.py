"""A FreeSWITCH event-socket double for reload tests: real TCP socket, real ESL framing.

Replies to the reload commands are the bytes captured from FreeSWITCH 1.10.12
(tests/fixtures/freeswitch-1.10.12/esl/inbound-reload.log) when the fixtures are present;
``script`` overrides a command's reply (a list is consumed one reply per call, e.g. a refused
restart, then OK).

Like FreeSWITCH, a profile that a ``start``/``restart`` (re)builds answers at once but is absent
from ``sofia status profile kallglot`` ("Invalid Profile!") for ``profile_start_delay`` seconds;
then it lists the transports of the rendered profile in ``conf_dir`` (else ``transports``).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.conftest import FIXTURES_DIR
from tests.fsdouble.config import Profile, load_config
from tests.fsdouble.sofia_status import INVALID_PROFILE, profile_status

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
        # mod_sofia.c 1.10.12 cmd_profile: "start" always reloads the XML first, then
        # "%s started successfully\n"; not in the capture.
        "sofia profile kallglot start": ["Reload XML [Success]\nkallglot started successfully\n"],
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
                 script: dict[str, str | list[str] | Callable[[str], str]] | None = None,
                 *, profile_start_delay: float = 0.2, conf_dir: Path | None = None,
                 transports: Sequence[str] = ("udp", "tcp", "tls")) -> None:
        self.password = password
        self.script = dict(script or {})
        self.defaults = default_replies()
        self.commands: list[str] = []  # api commands received, in order
        self.connections = 0
        self.profile_start_delay = profile_start_delay
        self.conf_dir = conf_dir
        self.transports = tuple(transports)
        self.profile_running = True  # as when FreeSWITCH started with a tree
        self._listed_at = 0.0  # monotonic time from which the profile is listed again
        self._bound: Profile | None = None  # the profile's settings as last (re)started
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

    @property
    def changes(self) -> list[str]:
        """The api commands received, without the read-only ``sofia status`` polls."""
        return [c for c in self.commands if not c.startswith("sofia status")]

    @property
    def status_polls(self) -> int:
        return sum(1 for c in self.commands if c.startswith("sofia status"))

    def reply_for(self, cmd: str) -> str:
        reply = self._scripted_or_default(cmd)
        self._track_profile(cmd, reply)
        return reply

    def _scripted_or_default(self, cmd: str) -> str:
        entry = self.script.get(cmd)
        if callable(entry):
            return entry(cmd)
        if isinstance(entry, list):
            return entry.pop(0) if len(entry) > 1 else entry[0]
        if isinstance(entry, str):
            return entry
        if cmd == "sofia status profile kallglot":
            return self._status()
        if " killgw " in cmd:
            return "+OK gateway marked for deletion.\n"
        if cmd in self.defaults:
            return self.defaults[cmd][0]
        return f"-ERR {cmd.split(' ')[0]} Command not found!\n"

    def _track_profile(self, cmd: str, reply: str) -> None:
        """What the reply says about the profile: (re)starting, stopped, not running."""
        if not cmd.startswith("sofia profile kallglot "):
            return
        if "Invalid Profile" in reply or "stopping:" in reply:
            self.profile_running = False
        elif "restarting:" in reply or ("started successfully" in reply and not self.profile_running):
            # The profile thread re-reads the XML and binds a moment after the reply.
            self.profile_running = True
            self._bound = self._rendered_profile()
            self._listed_at = time.monotonic() + self.profile_start_delay

    def _rendered_profile(self) -> Profile:
        if self.conf_dir is not None and (self.conf_dir / "rendered").exists():
            profiles = load_config(self.conf_dir / "rendered").profiles
            if "kallglot" in profiles:
                return profiles["kallglot"]
        plain = [t for t in ("udp", "tcp") if t in self.transports]
        return Profile("kallglot", {
            "sip-ip": "127.0.0.1", "ext-sip-ip": "127.0.0.1", "sip-port": "5060",
            "bind-params": f"transport={plain[0]}" if len(plain) == 1 else "",
            "tls": "true" if "tls" in self.transports else "false",
            "tls-only": "false" if plain else "true", "tls-sip-port": "5061",
            "tls-bind-params": "transport=tls", "context": "kallglot"})

    def _status(self) -> str:
        """``sofia status profile kallglot`` (mod_sofia.c cmd_status)."""
        if not self.profile_running or time.monotonic() < self._listed_at:
            return INVALID_PROFILE
        if self._bound is None:
            self._bound = self._rendered_profile()
        return profile_status(self._bound)

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
