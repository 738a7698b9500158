"""mod_audio_stream (MIT edition) as observed (fixtures README §9-10): a websocket client per
channel that sends the metadata text frame, then 20 ms L16 frames; announces server messages as
CUSTOM events (::connect ::error ::disconnect ::json ::play) and writes streamAudio payloads to
temp files."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)

FIRE = Callable[[str, bytes], Awaitable[None]]  # (subclass, json body)
_HOST_OK = re.compile(r"^[A-Za-z0-9.-]+$")
_EXT = {"wav": "wav", "mp3": "mp3", "ogg": "ogg"}


def valid_stream_url(url: str) -> bool:
    """ws:// or wss:// with a host of letters, digits, '-' and '.' only (no underscores)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme in ("ws", "wss") and bool(_HOST_OK.match(host))


@dataclass
class AudioStream:
    uuid: str
    url: str
    mix: str
    rate: int
    metadata: str
    temp_dir: Path
    fire: FIRE
    source: Callable[[int, int], bytes]  # (sample rate, bytes wanted) -> PCM (silence when done)
    speed: float = 1.0  # 1.0 = real time; larger = faster
    buffer_ms: int = 20
    audio_before_metadata: int = 0  # frames that win the race with the metadata (see switch.py)
    state: str = "connecting"  # connecting | connected | failed | closed_by_server | stopped
    frames_sent: int = 0
    bytes_sent: int = 0
    texts_received: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    paused: bool = False
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _session: aiohttp.ClientSession | None = None
    _task: asyncio.Task[None] | None = None
    _file_counter: int = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def usable(self) -> bool:
        """send_text/stop succeed unless the connection was refused (observed: -ERR then)."""
        return self.state != "failed"

    async def _run(self) -> None:
        parts = urlsplit(self.url)
        origin = f"http://{parts.hostname}:{parts.port or (443 if parts.scheme == 'wss' else 80)}"
        self._session = aiohttp.ClientSession(skip_auto_headers=("User-Agent", "Accept-Encoding"))
        try:
            self._ws = await self._session.ws_connect(self.url, headers={"Origin": origin}, autoping=True,
                                                      timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
        except (aiohttp.ClientError, OSError) as exc:
            self.state = "failed"
            errno = getattr(exc, "errno", None) or getattr(getattr(exc, "os_error", None), "errno", None)
            if errno == 111 or isinstance(exc, aiohttp.ClientConnectorError):
                body = {"status": "error",
                        "message": {"code": 6, "error": "Connection refused (system error 111)"}}
            else:
                body = {"status": "error", "message": {"code": 1, "error": str(exc)}}
            await self._session.close()
            await self.fire("mod_audio_stream::error", json.dumps(body, separators=(",", ":")).encode())
            return
        if self.state == "stopped":
            # `stop` (or the hangup) came while connecting: the module's cleanup already ran
            # (the bug is gone, the streamer marked cleaned up: no ::connect, no audio).
            await self._ws.close(code=1000, message=b"Normal closure")
            await self._session.close()
            return
        self.state = "connected"
        await self.fire("mod_audio_stream::connect", b'{"status":"connected"}')
        for _ in range(self.audio_before_metadata):
            channels = 2 if self.mix == "stereo" else 1
            early = self._frame(self.rate // 50 * 2 * channels, channels)
            await self._ws.send_bytes(early)
            self.frames_sent += 1
            self.bytes_sent += len(early)
        if self.metadata:
            await self._ws.send_str(self.metadata)
        sender = asyncio.get_running_loop().create_task(self._send_audio())
        try:
            await self._receive()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            await self._session.close()

    async def _send_audio(self) -> None:
        assert self._ws is not None
        channels = 2 if self.mix == "stereo" else 1
        frame_bytes = self.rate // 50 * 2 * channels
        batch = max(1, self.buffer_ms // 20)
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        # The first two frames go back to back, as observed.
        while self.state == "connected" and not self._ws.closed:
            if not self.paused:
                chunk = b"".join(self._frame(frame_bytes, channels) for _ in range(batch))
                await self._ws.send_bytes(chunk)
                self.frames_sent += batch
                self.bytes_sent += len(chunk)
            n += batch
            due = start + (n - 1) * 0.02 / self.speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)

    def _frame(self, frame_bytes: int, channels: int) -> bytes:
        mono = self.source(self.rate, frame_bytes // channels)
        mono = mono.ljust(frame_bytes // channels, b"\0")
        if channels == 1:
            return mono
        # stereo: caller on the left, the (silent) other direction on the right
        out = bytearray()
        for i in range(0, len(mono), 2):
            out += mono[i:i + 2] + b"\0\0"
        return bytes(out)

    async def _receive(self) -> None:
        assert self._ws is not None
        code: int | None = None
        reason = ""
        while True:
            msg = await self._ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.texts_received.append(msg.data)
                await self._on_text(msg.data)
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                code, reason = int(msg.data), str(msg.extra or "")
                break
            elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
        if self.state == "connected":
            # The server closed the connection: the only case that fires ::disconnect.
            self.state = "closed_by_server"
            body = {"status": "disconnected", "message": {"code": code or 1006, "reason": reason}}
            await self.fire("mod_audio_stream::disconnect", json.dumps(body, separators=(",", ":")).encode())

    async def _on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if isinstance(msg, dict) and msg.get("type") == "streamAudio" and isinstance(msg.get("data"), dict):
            data = msg["data"]
            kind = str(data.get("audioDataType", "raw"))
            rate = int(data.get("sampleRate", 8000))
            try:
                audio = base64.b64decode(str(data.get("audioData", "")), validate=True)
            except (binascii.Error, ValueError):
                log.warning("streamAudio with bad base64 ignored")
                return
            ext = _EXT.get(kind, f"r{rate // 1000}")
            path = self.temp_dir / f"{self.uuid}_{self._file_counter}.tmp.{ext}"
            self._file_counter += 1
            path.write_bytes(audio)
            self.files.append(path)
            body = json.dumps({"audioDataType": kind, "sampleRate": rate, "file": str(path)},
                              separators=(",", ":"))
            await self.fire("mod_audio_stream::play", body.encode())
        else:
            await self.fire("mod_audio_stream::json", text.encode())

    async def send_text(self, text: str) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.send_str(text)

    async def stop(self) -> None:
        """``stop`` and hangup: close 1000 "Normal closure", no ::disconnect."""
        if self.state == "connected":
            self.state = "stopped"
            if self._ws is not None and not self._ws.closed:
                await self._ws.close(code=1000, message=b"Normal closure")
        elif self.state == "connecting":
            self.state = "stopped"
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 3)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
