"""A scripted FreeSWITCH on real sockets, for driving the real ``kallglot controller`` subprocess.

Much smaller than ``tests/fsdouble`` (no SIP, no config, no websockets): the test plays
FreeSWITCH's side of one outbound call socket, or of an inbound ESL connection, using the
frame layouts captured from FreeSWITCH 1.10.12 (fixtures README §5–§12) and the ESL encoder of
``controller.esl.protocol``. Events carry the headers the controller reads; the full header sets
are the double's job.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.esl.protocol import encode_event_plain, fs_url_encode

RESPOND_CAUSE = {503: "NORMAL_TEMPORARY_FAILURE", 404: "UNALLOCATED_NUMBER", 410: "NUMBER_CHANGED",
                 403: "CALL_REJECTED", 486: "USER_BUSY", 488: "INCOMPATIBLE_DESTINATION",
                 400: "NORMAL_TEMPORARY_FAILURE"}


@dataclass
class Command:
    line: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def app(self) -> str:
        return self.headers.get("execute-app-name", "")

    @property
    def arg(self) -> str:
        return self.headers.get("execute-app-arg", "") or self.body.decode()

    def __str__(self) -> str:
        if self.line == "sendmsg":
            return f"sendmsg {self.app} {self.arg}".rstrip()
        return self.line


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read_command(self) -> Command | None:
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        block, self.buf = self.buf.split(b"\n\n", 1)
        lines = block.decode().split("\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(": ")
            headers[key] = value
        body = b""
        length = int(headers.get("Content-Length", "0") or 0)
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        if length:
            body, self.buf = self.buf[:length], self.buf[length:]
        return Command(lines[0], headers, body)


def _reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def _api_response(text: str) -> bytes:
    body = text.encode()
    return f"Content-Type: api/response\nContent-Length: {len(body)}\n\n".encode() + body


def _disconnect_notice(disposition: str) -> bytes:
    if disposition == "linger":
        return (b"Content-Type: text/disconnect-notice\nController-Session-UUID: x\n"
                b"Content-Disposition: linger\nChannel-Name: x\nLinger-Time: -1\nContent-Length: 0\n\n")
    body = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    return (b"Content-Type: text/disconnect-notice\nController-Session-UUID: x\n"
            b"Content-Disposition: disconnect\nContent-Length: " + str(len(body)).encode() + b"\n\n" + body)


class WireCall:
    """FreeSWITCH's end of one outbound ``socket … async full`` connection to the controller."""

    def __init__(self, controller: tuple[str, int], variables: dict[str, str], *,
                 offer_codecs: tuple[str, ...] = ("PCMU", "PCMA"), offer_crypto: bool = False,
                 bridge_up: bool = True, call_uuid: str | None = None) -> None:
        self.uuid = call_uuid or str(uuidlib.uuid4())
        self.variables = variables
        self.offer_codecs = offer_codecs
        self.offer_crypto = offer_crypto
        self.bridge_up = bridge_up
        self.commands: list[Command] = []
        self.channel_vars: dict[str, str] = {}
        self.hangup_cause: str | None = None
        self.playing: str | None = None
        self.played: list[str] = []
        self.closed = threading.Event()
        self.exited = False
        self._lock = threading.Lock()
        self.sock = socket.create_connection(controller, timeout=10)
        self.sock.settimeout(None)
        self._reader = _Reader(self.sock)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # -- what the controller did --------------------------------------------------------------------
    def command_lines(self) -> list[str]:
        with self._lock:
            return [str(c) for c in self.commands]

    def wait_command(self, prefix: str, timeout: float = 15.0) -> Command:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for c in self.commands:
                    if str(c).startswith(prefix):
                        return c
            time.sleep(0.01)
        raise AssertionError(f"controller never sent {prefix!r}; got {self.command_lines()}")

    def wait_closed(self, timeout: float = 15.0) -> None:
        if not self.closed.wait(timeout):
            raise AssertionError(f"controller kept the socket open; got {self.command_lines()}")

    # -- FreeSWITCH's side ---------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        with self._lock:
            if not self.closed.is_set():
                try:
                    self.sock.sendall(data)
                except OSError:
                    self.closed.set()

    def event(self, name: str, body: bytes = b"", **headers: str) -> None:
        items = [("Event-Name", name), ("Unique-ID", self.uuid), *headers.items()]
        self.send(encode_event_plain(items, body))

    def custom(self, subclass: str, body: object, uuid: str | None = None) -> None:
        items = [("Event-Subclass", subclass), ("Event-Name", "CUSTOM"), ("Unique-ID", uuid or self.uuid)]
        self.send(encode_event_plain(items, json.dumps(body, separators=(",", ":")).encode()))

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        if self.hangup_cause is not None:
            return
        self.hangup_cause = cause
        self.event("CHANNEL_HANGUP", **{"Hangup-Cause": cause})
        self.send(_disconnect_notice("linger"))  # lingering: the socket stays until `exit`

    def finish_playback(self) -> None:
        played, self.playing = self.playing, None
        self.event("CHANNEL_EXECUTE_COMPLETE", Application="playback",
                   **{"Application-Data": played or "", "Application-Response": "FILE PLAYED"})

    def _connect_reply(self) -> bytes:
        items = {"Event-Name": "CHANNEL_DATA", "Unique-ID": self.uuid, "Call-Direction": "inbound",
                 "Channel-Call-UUID": self.uuid, "variable_uuid": self.uuid, **self.variables,
                 "Content-Type": "command/reply", "Reply-Text": "+OK\n", "Socket-Mode": "async",
                 "Control": "full"}
        return "".join(f"{k}: {fs_url_encode(v)}\n" for k, v in items.items()).encode() + b"\n"

    def _serve(self) -> None:
        try:
            while True:
                cmd = self._reader.read_command()
                if cmd is None:
                    break
                with self._lock:
                    self.commands.append(cmd)
                self._on_command(cmd)
                if cmd.line == "exit":
                    break
        except OSError:
            pass
        finally:
            self.closed.set()
            self.sock.close()

    def _on_command(self, cmd: Command) -> None:
        verb = cmd.line.split(" ", 1)[0]
        if verb == "connect":
            self.send(self._connect_reply())
        elif verb == "myevents":
            self.send(_reply("+OK Events Enabled"))
        elif verb == "event":
            self.send(_reply("+OK event listener enabled plain"))
        elif verb == "linger":
            self.send(_reply("+OK will linger"))
        elif verb == "exit":
            self.exited = True
            self.send(_reply("+OK bye"))
            self.send(_disconnect_notice("disconnect"))
        elif verb == "sendmsg":
            self.send(_reply("+OK"))
            self._execute(cmd.app, cmd.arg, cmd.headers.get("Event-UUID", str(uuidlib.uuid4())))
        elif verb == "api":
            self.send(_api_response(self._api(cmd.line[4:])))
        else:
            self.send(_reply("-ERR command not found"))

    def _execute(self, app: str, arg: str, event_uuid: str) -> None:
        if self.hangup_cause is not None:
            return
        self.event("CHANNEL_EXECUTE", Application=app, **{"Application-UUID": event_uuid})
        if app == "set":
            name, _, value = arg.partition("=")
            self.channel_vars[name] = value
        elif app == "respond":
            self.hangup(RESPOND_CAUSE.get(int(arg), "NORMAL_CLEARING"))
        elif app == "answer":
            wanted = self.channel_vars.get("absolute_codec_string")
            srtp_ok = self.channel_vars.get("rtp_secure_media") != "mandatory" or self.offer_crypto
            codec_ok = not wanted or any(c in self.offer_codecs for c in wanted.split(","))
            if not (srtp_ok and codec_ok):
                self.hangup("INCOMPATIBLE_DESTINATION")
            else:
                self.event("CHANNEL_ANSWER")
        elif app == "hangup":
            self.hangup(arg or "NORMAL_CLEARING")
        self.event("CHANNEL_EXECUTE_COMPLETE", Application=app,
                   **{"Application-UUID": event_uuid, "Application-Response": "_none_"})

    def _api(self, line: str) -> str:
        parts = line.split(" ")
        if parts[0] == "uuid_audio_stream" and len(parts) > 2 and parts[2] == "start":
            if self.bridge_up:
                self.custom("mod_audio_stream::connect", {"status": "connected"})
            else:
                self.custom("mod_audio_stream::error", {"status": "error", "message": {
                    "code": 6, "error": "Connection refused (system error 111)"}})
            return "+OK Success\n"
        if parts[0] == "uuid_audio_stream":
            return "+OK Success\n"
        if parts[0] == "uuid_setvar_multi":  # mod_commands: `<uuid> a=1;b=2` → +OK
            if parts[1] != self.uuid:
                return "-ERR No such channel!\n"
            for item in " ".join(parts[2:]).split(";"):
                name, _, value = item.partition("=")
                self.variables[f"variable_{name}"] = value
            return "+OK\n"
        if parts[0] == "uuid_broadcast":
            if parts[1] != self.uuid or self.hangup_cause is not None:
                return "-ERR invalid uuid\n"
            assert self.playing is None, "overlapping playback"
            self.playing = parts[2]
            self.event("CHANNEL_EXECUTE", Application="playback", **{"Application-Data": parts[2]})
            if parts[2].startswith("silence_stream://"):  # the CF_BREAK sink ends by itself
                self.finish_playback()
            else:
                self.played.append(parts[2])
            return "+OK Message sent\n"
        if parts[0] == "uuid_break":
            if self.playing:
                self.finish_playback()
            return ""  # break_function prints nothing on success
        return f"-ERR {parts[0]} Command not found!\n"


class ScriptedInboundEsl:
    """FreeSWITCH's event socket (port 8021) as far as reconciliation uses it."""

    def __init__(self, password: str = "ClueCon") -> None:
        self.password = password
        self.live_uuids: set[str] = set()
        self.requests: list[str] = []
        # bgapi command -> BACKGROUND_JOB body (what FreeSWITCH's job printed)
        self.job_result: Callable[[str], str] = lambda cmd: "+OK " + str(uuidlib.uuid4()) + "\n"
        self.on_request: Callable[[str], None] | None = None
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.server.close()

    def restart(self, down_s: float) -> None:
        """FreeSWITCH restarting: every ESL connection drops, the port refuses for ``down_s``."""
        server, self.server = self.server, None  # type: ignore[assignment]
        # shutdown() stops the listen at once (close() alone waits for the blocked accept()).
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()
        time.sleep(down_s)
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def show_calls(self) -> str:
        if not self.live_uuids:
            return '{"row_count": 0}\n'
        rows = [{"uuid": u, "direction": "inbound"} for u in sorted(self.live_uuids)]
        return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":")) + "\n"

    def _accept(self) -> None:
        server = self.server
        while not self._stop:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = _Reader(conn)
        subscribed = False
        try:
            conn.sendall(b"Content-Type: auth/request\n\n")
            while True:
                cmd = reader.read_command()
                if cmd is None:
                    return
                self.requests.append(cmd.line)
                if self.on_request is not None:
                    self.on_request(cmd.line)
                if cmd.line.startswith("auth "):
                    ok = cmd.line[5:] == self.password
                    conn.sendall(_reply("+OK accepted" if ok else "-ERR invalid"))
                    if not ok:
                        return
                elif cmd.line == "api show calls as json":
                    conn.sendall(_api_response(self.show_calls()))
                elif cmd.line.startswith("api uuid_kill "):
                    target = cmd.line.split(" ")[2]
                    if target in self.live_uuids:
                        self.live_uuids.discard(target)
                        conn.sendall(_api_response("+OK\n"))
                    else:
                        conn.sendall(_api_response("-ERR No such channel!\n"))
                elif cmd.line.startswith("event plain"):
                    subscribed = "BACKGROUND_JOB" in cmd.line
                    conn.sendall(_reply("+OK event listener enabled plain"))
                elif cmd.line.startswith("bgapi "):
                    job = str(uuidlib.uuid4())
                    conn.sendall(f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\n"
                                 f"Job-UUID: {job}\n\n".encode())
                    if subscribed:  # BACKGROUND_JOB only reaches subscribed connections
                        body = self.job_result(cmd.line[6:]).encode()
                        conn.sendall(encode_event_plain(
                            [("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job),
                             ("Job-Command", cmd.line[6:].split(" ", 1)[0])], body))
                elif cmd.line == "exit":
                    conn.sendall(_reply("+OK bye"))
                    return
                else:
                    conn.sendall(_reply("-ERR command not found"))
        except OSError:
            return
        finally:
            conn.close()
