"""Replays a captured FreeSWITCH transcript over a real socket against our ESL layer.

FreeSWITCH's records are sent byte for byte; before each recorded client command the replayer
reads one command from our side and checks it against the recording (ignoring the
``Event-UUID``/``event-lock`` headers and the auth password, which the caller may vary).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from tests.fsdouble.fixtures import ESL_DIR, Record, read_transcript

IGNORED = {"Event-UUID", "event-lock"}


def _normalise(command: bytes) -> tuple[str, dict[str, str]]:
    lines = command.decode().rstrip("\n").split("\n")
    first = lines[0]
    if first.startswith("auth "):
        first = "auth ***"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        if k not in IGNORED:
            headers[k] = v
    return first, headers


@dataclass
class Replayer:
    name: str
    records: list[Record] = field(init=False)
    received: list[bytes] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.records = read_transcript(ESL_DIR / f"{self.name}.log")

    def play(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        buf = b""
        try:
            for rec in self.records:
                if rec.from_fs:
                    sock.sendall(rec.data)
                    continue
                while b"\n\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        self.mismatches.append(f"client closed before sending {rec.data[:40]!r}")
                        return
                    buf += chunk
                cmd, _, buf = buf.partition(b"\n\n")
                cmd += b"\n\n"
                self.received.append(cmd)
                if _normalise(cmd) != _normalise(rec.data):
                    self.mismatches.append(f"expected {rec.data[:80]!r}, got {cmd[:80]!r}")
            # FreeSWITCH closes after the last record of these transcripts.
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            sock.close()

    def serve_once(self) -> tuple[int, threading.Thread]:
        """Listen on a free port; replay to the first client that connects."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def run() -> None:
            listener.settimeout(10)
            try:
                conn, _ = listener.accept()
            except BaseException as exc:
                self.error = exc
                return
            finally:
                listener.close()
            self.play(conn)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return port, thread

    def dial(self, port: int) -> threading.Thread:
        """Connect to our outbound server like FreeSWITCH's dialplan ``socket`` app, then replay."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        thread = threading.Thread(target=self.play, args=(sock,), daemon=True)
        thread.start()
        return thread
