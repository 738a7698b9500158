"""One event-socket connection of the double (inbound on its ESL port, or outbound to the
controller): command parsing, per-connection subscriptions/filters, event delivery, linger."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from controller.esl.protocol import encode_event_plain

log = logging.getLogger(__name__)

GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


@dataclass
class Command:
    line: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


async def read_command(reader: asyncio.StreamReader) -> Command | None:
    """One client command: lines up to a blank line, then ``content-length`` bytes if given."""
    lines: list[str] = []
    while True:
        raw = await reader.readline()
        if not raw:
            return None
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line == "":
            if not lines:
                continue
            break
        lines.append(line)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip()] = v.strip()
    body = b""
    length = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
    if length:
        body = await reader.readexactly(int(length))
    return Command(lines[0].strip(), headers, body)


class Listener:
    """Subscriptions follow mod_event_socket: ``event plain`` adds names (``ALL``; words after
    ``CUSTOM`` are subclasses), ``filter`` restricts by header value, ``myevents`` restricts an
    outbound socket to its own channel, ``noevents`` clears."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, outbound: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.outbound = outbound
        self.authed = outbound
        # `socket <addr> … full`: without it an outbound socket may not use api, bgapi, event…
        self.full = not outbound
        self.all_events = False
        self.all_plain = False  # myevents: every event but CUSTOM ones (fixtures README §8)
        self.names: set[str] = set()
        self.subclasses: set[str] = set()
        self.all_custom = False
        self.filters: list[tuple[str, str]] = []
        self.my_uuid: str | None = None
        self.channel_uuid: str | None = None
        self.lingering = False
        self.linger_seconds = -1
        self.closed = False
        self.connected = asyncio.Event()  # an outbound socket got its `connect`
        self.sent_frames: list[bytes] = []
        self._lock = asyncio.Lock()

    # -- output --------------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        if self.closed:
            return
        async with self._lock:
            try:
                self.writer.write(data)
                await self.writer.drain()
                self.sent_frames.append(data)
            except (ConnectionError, RuntimeError):
                await self.close()

    async def reply(self, text: str, extra: list[tuple[str, str]] | None = None) -> None:
        head = "Content-Type: command/reply\n" + f"Reply-Text: {text}\n"
        head += "".join(f"{k}: {v}\n" for k, v in extra or [])
        await self.write(head.encode() + b"\n")

    async def api_response(self, body: str) -> None:
        data = body.encode()
        await self.write(f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data)

    async def disconnect_notice(self, disposition: str, channel_name: str = "") -> None:
        if self.channel_uuid:
            head = f"Content-Type: text/disconnect-notice\nControlled-Session-UUID: {self.channel_uuid}\n"
        else:
            head = "Content-Type: text/disconnect-notice\n"
        if disposition == "linger":
            head += (f"Content-Disposition: linger\nChannel-Name: {channel_name}\n"
                     f"Linger-Time: {self.linger_seconds}\nContent-Length: 0\n\n")
            await self.write(head.encode())
        else:
            if self.channel_uuid:
                head += "Content-Disposition: disconnect\n"
            await self.write(head.encode() + f"Content-Length: {len(GOODBYE)}\n\n".encode() + GOODBYE)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.close()
        except RuntimeError:
            pass

    # -- subscriptions -------------------------------------------------------------------------
    def subscribe(self, words: list[str]) -> None:
        custom = False
        for w in words:
            if custom:
                self.subclasses.add(w)
            elif w == "CUSTOM":
                custom = True
            elif w == "ALL":
                self.all_events = True
            else:
                self.names.add(w)
        if custom and not any(w for w in words[words.index("CUSTOM") + 1:]):
            self.all_custom = True

    def unsubscribe_all(self) -> None:
        self.all_events = False
        self.all_plain = False
        self.all_custom = False
        self.names.clear()
        self.subclasses.clear()

    def wants(self, items: list[tuple[str, str]]) -> bool:
        if self.closed:
            return False
        headers = dict(items)
        name = headers.get("Event-Name", "")
        if name == "CUSTOM":
            sub = headers.get("Event-Subclass", "")
            ok = self.all_events or self.all_custom or sub in self.subclasses
        else:
            ok = self.all_events or self.all_plain or name in self.names
        if not ok:
            return False
        if self.my_uuid and headers.get("Unique-ID") != self.my_uuid:
            return False
        if self.filters and not any(headers.get(k) == v for k, v in self.filters):
            return False
        return True

    async def deliver(self, items: list[tuple[str, str]], body: bytes) -> None:
        if self.wants(items):
            await self.write(encode_event_plain(items, body))


CommandHandler = Callable[[Listener, Command], Awaitable[bool]]
