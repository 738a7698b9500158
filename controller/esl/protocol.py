"""FreeSWITCH event-socket (ESL) wire format: framing, event decoding and command encoding.

Pure functions and a byte-fed state machine; no sockets here. Verified against the captured
FreeSWITCH 1.10.12 traces (fixtures README): a frame is ``Name: value\\n`` header lines, a blank
line, then exactly ``Content-Length`` body bytes when that header is present. Outer header values
are sent as-is except on the outbound ``connect`` reply, whose values are URL-encoded like an
event's. A ``text/event-plain`` body is itself a header block (URL-encoded values) optionally
followed by an inner ``Content-Length`` body (mod_audio_stream's JSON, no trailing newline).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote


class ProtocolError(ValueError):
    """Bytes that are not a valid ESL frame (the stream cannot be resynchronised)."""


# Content types FreeSWITCH sends to event-socket clients.
AUTH_REQUEST = "auth/request"
COMMAND_REPLY = "command/reply"
API_RESPONSE = "api/response"
DISCONNECT_NOTICE = "text/disconnect-notice"
RUDE_REJECTION = "text/rude-rejection"
EVENT_PLAIN = "text/event-plain"
EVENT_JSON = "text/event-json"
LOG_DATA = "log/data"

# A header block larger than this without a blank line is not ESL (the connect reply is ~7 KB).
MAX_HEADER_BLOCK = 1 << 20
MAX_BODY = 64 << 20


Header = tuple[str, str]


def _parse_header_block(block: bytes, *, decode: bool) -> list[Header]:
    """Header lines in wire order; a list, because FreeSWITCH repeats some (``Hangup-Cause``)."""
    items: list[Header] = []
    for raw_line in block.split(b"\n"):
        line = raw_line.decode("utf-8", errors="replace")
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"ESL header line without ':': {line[:80]!r}")
        if value.startswith(" "):
            value = value[1:]
        items.append((name.strip(), unquote(value) if decode else value))
    return items


@dataclass(frozen=True)
class Frame:
    """One ESL frame: outer headers (values as sent) and the raw body.

    ``items`` keeps every header line in wire order, repeats included; ``headers`` is the
    convenient mapping (FreeSWITCH's repeats carry equal values).
    """

    headers: dict[str, str]
    body: bytes = b""
    items: tuple[Header, ...] = ()

    def __post_init__(self) -> None:
        if not self.items:
            object.__setattr__(self, "items", tuple(self.headers.items()))

    @classmethod
    def from_items(cls, items: Iterable[Header], body: bytes = b"") -> Frame:
        items = tuple(items)
        return cls(headers=dict(items), body=body, items=items)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        """``Reply-Text`` of a command/reply, URL-decoded (the ``connect`` reply encodes it)."""
        return unquote(self.headers.get("Reply-Text", ""))

    @property
    def ok(self) -> bool:
        return self.reply_text.startswith("+OK")

    def decoded_headers(self) -> dict[str, str]:
        """Outer headers with URL-decoded values: the channel data of an outbound ``connect`` reply."""
        return {k: unquote(v) for k, v in self.headers.items()}

    def body_text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def encode(self) -> bytes:
        """Serialise as FreeSWITCH would (headers in order; caller keeps Content-Length right)."""
        head = "".join(f"{k}: {v}\n" for k, v in self.items).encode()
        return head + b"\n" + self.body


@dataclass(frozen=True)
class Event:
    """A decoded ``text/event-plain`` event: URL-decoded headers plus its body.

    ``items`` keeps every header in wire order (repeats included), ``headers`` maps them.
    """

    headers: dict[str, str]
    body: bytes = b""
    items: tuple[Header, ...] = ()

    def __post_init__(self) -> None:
        if not self.items:
            object.__setattr__(self, "items", tuple(self.headers.items()))

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def subclass(self) -> str:
        return self.headers.get("Event-Subclass", "")

    @property
    def key(self) -> str:
        """Dispatch key: the subclass for CUSTOM events, else the event name."""
        return self.subclass if self.name == "CUSTOM" and self.subclass else self.name

    @property
    def uuid(self) -> str:
        return self.headers.get("Unique-ID", "")

    def get(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    def variable(self, name: str, default: str = "") -> str:
        return self.headers.get(f"variable_{name}", default)

    def body_text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON (mod_audio_stream events); raises ValueError when it is not JSON."""
        return json.loads(self.body)

    @classmethod
    def from_frame(cls, frame: Frame) -> Event:
        if frame.content_type != EVENT_PLAIN:
            raise ProtocolError(f"not a plain event: Content-Type {frame.content_type!r}")
        return decode_event_plain(frame.body)


def decode_event_plain(data: bytes) -> Event:
    """Decode the body of a ``text/event-plain`` frame."""
    sep = data.find(b"\n\n")
    if sep < 0:
        block, rest = data, b""
    else:
        block, rest = data[:sep], data[sep + 2 :]
    items = _parse_header_block(block, decode=True)
    headers = dict(items)
    body = b""
    length_text = headers.get("Content-Length")
    if length_text is not None:
        try:
            length = int(length_text)
        except ValueError:
            raise ProtocolError(f"bad inner Content-Length {length_text!r}") from None
        if length < 0 or length > len(rest):
            raise ProtocolError(f"inner Content-Length {length} but {len(rest)} bytes follow")
        body = rest[:length]
    return Event(headers=headers, body=body, items=tuple(items))


# Characters switch_url_encode() escapes (switch_utils.c); everything else printable goes as-is.
_FS_URL_UNSAFE = frozenset('\r\n "#%&+:;<=>?@[\\]^`{|}')


def fs_url_encode(value: str) -> str:
    """URL-encode a header value exactly like FreeSWITCH (commas, slashes, '-' stay literal)."""
    out: list[str] = []
    for ch in value:
        if ch in _FS_URL_UNSAFE or ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def encode_event_plain(headers: Mapping[str, str] | Iterable[Header], body: bytes = b"") -> bytes:
    """Build a complete ``text/event-plain`` frame the way mod_event_socket does.

    ``headers`` are plain values (encoded here); with a body, an inner ``Content-Length`` is
    appended after them and the body follows the blank line with no trailing newline.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lines = [f"{k}: {fs_url_encode(v)}\n" for k, v in pairs if k != "Content-Length"]
    if body:
        lines.append(f"Content-Length: {len(body)}\n")
        inner = "".join(lines).encode() + b"\n" + body
    else:
        inner = "".join(lines).encode() + b"\n"
    return f"Content-Length: {len(inner)}\nContent-Type: {EVENT_PLAIN}\n\n".encode() + inner


class FrameParser:
    """Incremental ESL frame parser: ``feed(bytes)`` returns the frames completed so far."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: tuple[Header, ...] | None = None  # headers of a frame waiting for its body
        self._need = 0

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        return list(self._drain())

    def _drain(self) -> Iterator[Frame]:
        while True:
            if self._pending is None:
                # FreeSWITCH never sends stray newlines between frames, but tolerate them.
                while self._buf[:1] == b"\n":
                    del self._buf[:1]
                end = self._buf.find(b"\n\n")
                if end < 0:
                    if len(self._buf) > MAX_HEADER_BLOCK:
                        raise ProtocolError("ESL header block too large")
                    return
                items = tuple(_parse_header_block(bytes(self._buf[:end]), decode=False))
                del self._buf[: end + 2]
                headers = dict(items)
                length_text = headers.get("Content-Length")
                if length_text is None:
                    yield Frame(headers=headers, items=items)
                    continue
                try:
                    need = int(length_text)
                except ValueError:
                    raise ProtocolError(f"bad Content-Length {length_text!r}") from None
                if need < 0 or need > MAX_BODY:
                    raise ProtocolError(f"Content-Length out of range: {need}")
                self._pending, self._need = items, need
            if len(self._buf) < self._need:
                return
            body = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            items, self._pending = self._pending, None
            yield Frame(headers=dict(items), body=body, items=items)


def _check_line(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} must not contain a line break")
    return text


def encode_command(command: str, headers: Mapping[str, str] | None = None, body: bytes = b"") -> bytes:
    """Encode a client command (``api status``, ``event plain …``, ``sendmsg`` with headers).

    Line breaks in the command or header values are refused: they would inject a second command.
    """
    out = [_check_line(command, "ESL command") + "\n"]
    for name, value in (headers or {}).items():
        out.append(f"{_check_line(name, 'ESL header name')}: {_check_line(value, f'ESL header {name}')}\n")
    if body:
        out.append(f"content-length: {len(body)}\n")
    return "".join(out).encode() + b"\n" + body


def encode_sendmsg(
    app: str,
    arg: str | None = None,
    *,
    uuid: str | None = None,
    event_uuid: str | None = None,
    lock: bool = False,
    loops: int | None = None,
) -> bytes:
    """``sendmsg`` executing a dialplan application (as in the captured controller)."""
    headers: dict[str, str] = {"call-command": "execute", "execute-app-name": app}
    if arg is not None and arg != "":
        headers["execute-app-arg"] = arg
    if loops is not None:
        headers["loops"] = str(loops)
    if lock:
        headers["event-lock"] = "true"
    if event_uuid:
        headers["Event-UUID"] = event_uuid
    return encode_command(f"sendmsg {uuid}" if uuid else "sendmsg", headers)


def event_subscription(events: Iterable[str]) -> str:
    """The ``event plain …`` line: plain event names first, then ``CUSTOM`` and the subclasses.

    FreeSWITCH reads every word after ``CUSTOM`` as a subclass, so CUSTOM must come last.
    Names containing ``::`` are subclasses; ``CUSTOM`` alone may also be given.
    """
    plain: list[str] = []
    custom: list[str] = []
    for name in events:
        name = name.strip()
        if not name or name == "CUSTOM":
            continue
        if any(c.isspace() for c in name):
            raise ValueError(f"event name {name!r} must not contain spaces")
        (custom if "::" in name else plain).append(name)
    if not plain and not custom:
        raise ValueError("no events to subscribe to")
    words = plain + (["CUSTOM", *custom] if custom else [])
    return "event plain " + " ".join(words)
