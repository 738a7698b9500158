"""The bridge against what a real mod_audio_stream sent (fixtures/ws/outbound-call-udp.ws.jsonl):
its exact handshake bytes, its two-field metadata frame, 640-byte masked frames, and its
``1000 Normal closure`` on stop — over a raw TCP socket, so nothing is normalized by a client
library."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time

import numpy as np
import pytest

from controller.store import Store
from media_bridge.config import BridgeConfig
from media_bridge.engines.passthrough import PassthroughEngine
from tests.bridge.helpers import running_bridge, wait_for
from tests.conftest import FIXTURES_DIR

TRACE = FIXTURES_DIR / "ws" / "outbound-call-udp.ws.jsonl"


def load_trace() -> list[dict]:
    if not TRACE.is_file():
        pytest.skip(f"fixture {TRACE} not present")
    return [json.loads(line) for line in TRACE.read_text().splitlines() if line.strip()]


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2), as libwsc in mod_audio_stream writes them."""
    header = bytes([0x80 | opcode])
    n = len(payload)
    header += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def make_fixture_session(store: Store, session_id: str) -> None:
    now = time.time()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO organizations (id, name, created_at) VALUES ('org_fixture', 'f', ?)", (now,)
        )
        conn.execute(
            "INSERT INTO sessions (id, org_id, mode, source_language, target_language, region, provider,"
            " status, created_at, updated_at)"
            " VALUES (?, 'org_fixture', 'bidirectional_translation', 'en', 'es', 'eu', 'sip',"
            " 'connecting', ?, ?)",
            (session_id, now, now),
        )


def test_replay_of_a_real_mod_audio_stream_connection(store: Store) -> None:
    trace = load_trace()
    handshake = next(r for r in trace if r["kind"] == "handshake")
    metadata = next(r for r in trace if r["kind"] == "text_in")["text"]
    summary = next(r for r in trace if r["kind"] == "binary_summary")
    close = next(r for r in trace if r["kind"] == "close_in")
    path = handshake["request_line"].split()[1]
    session_id = path.split("/")[3]
    make_fixture_session(store, session_id)
    # A 440 Hz tone at the captured level for the frames whose content was not kept.
    t = np.arange(summary["frames"] * 320) / 16000
    audio = (np.sin(2 * np.pi * 440 * t) * 4234 * np.sqrt(2)).astype("<i2").tobytes()

    async def main() -> None:
        config = BridgeConfig(engine="passthrough")
        async with running_bridge(store, PassthroughEngine(), config) as rb:
            host, port = rb.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            lines = [handshake["request_line"]]
            for name, value in handshake["headers"]:
                if name.lower() in ("host", "origin"):
                    value = value.replace("127.0.0.1:8765", f"{host}:{port}")
                lines.append(f"{name}: {value}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            status = await reader.readuntil(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 101")
            writer.write(client_frame(0x1, metadata.encode()))
            for i in range(summary["frames"]):
                writer.write(client_frame(0x2, audio[i * 640 : (i + 1) * 640]))
                if i % 10 == 9:
                    await writer.drain()
            await writer.drain()
            await wait_for(lambda: rb.bridge.metrics.frames._value.get() == summary["frames"], timeout=10)
            row = store.query_one("SELECT status FROM sessions WHERE id = ?", (session_id,))
            assert row["status"] == "active"
            writer.write(client_frame(0x8, struct.pack(">H", close["code"]) + close["reason"].encode()))
            await writer.drain()
            opcode, payload = await asyncio.wait_for(read_frame(reader), timeout=10)
            assert opcode == 0x8 and struct.unpack(">H", payload[:2])[0] == 1000
            writer.close()
            await wait_for(lambda: not rb.bridge.sessions, timeout=10)
            assert rb.bridge.metrics.closes.collect()[0].samples == []  # the bridge closed nothing itself

    asyncio.run(main())
