"""RTP for the real-FreeSWITCH caller: G.711 (PCMU/PCMA) at 8 kHz on 127.0.0.1.

Like a phone, the endpoint sends a packet every 20 ms for the whole call (silence when nobody
speaks; what ``say`` queued otherwise) and records every packet that arrives, so a test can
compare what one party said with what the other party heard.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

RATE = 8000
FRAME = 160  # samples per 20 ms packet
PAYLOAD_TYPE = {"PCMU": 0, "PCMA": 8}

# --- G.711 (ITU-T G.711, the classic segment/mantissa algorithm) --------------------------
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def ulaw_encode(pcm: np.ndarray) -> bytes:
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(sign != 0, -mag, mag).astype(np.int16)


def alaw_encode(pcm: np.ndarray) -> bytes:
    x = pcm.astype(np.int32) >> 3  # 13-bit
    sign = np.where(x >= 0, 0x80, 0)
    mag = np.where(x >= 0, x, -x - 1)
    mag = np.minimum(mag, 0xFFF)
    exponent = np.where(mag < 32, 0, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, mag >> 1, mag >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    mag = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return np.where(sign != 0, mag, -mag).astype(np.int16)


CODECS = {"PCMU": (ulaw_encode, ulaw_decode), "PCMA": (alaw_encode, alaw_decode)}


@dataclass
class Received:
    arrival: float  # time.monotonic()
    seq: int
    timestamp: int
    marker: bool
    samples: np.ndarray


class RtpEndpoint:
    """Bind first (``port`` goes into the SDP offer), then ``start`` with the answer's address."""

    def __init__(self, codec: str = "PCMU", *, loss_pct: float = 0.0, jitter_ms: float = 0.0,
                 stops_after_s: float | None = None) -> None:
        """``loss_pct``: drop that share of packets, evenly spread (sequence numbers still count
        them, as a lossy network would); ``jitter_ms``: send every other packet that much late;
        ``stops_after_s``: stop sending RTP that long after the call started (0: never send)."""
        if codec not in CODECS:
            raise ValueError(f"RTP endpoint speaks {sorted(CODECS)}, not {codec}")
        self.codec = codec
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.remote: tuple[str, int] | None = None
        self.packets: list[Received] = []
        self.sent_at: list[tuple[float, int]] = []  # (monotonic time, first sample index) per say()
        self._queue = np.zeros(0, dtype=np.int16)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ssrc = int.from_bytes(np.random.default_rng().bytes(4), "big")
        self.drop_every = round(100 / loss_pct) if loss_pct > 0 else 0
        self.jitter_s = jitter_ms / 1000
        self.stops_after_s = stops_after_s
        self.sent = 0  # packets put on the wire

    def start(self, remote: tuple[str, int], codec: str | None = None) -> None:
        """``codec``: what the answer chose (the offer may have listed several)."""
        if codec is not None:
            if codec not in CODECS:
                raise ValueError(f"the answer chose {codec}, which this endpoint cannot speak")
            self.codec = codec
        self.remote = remote
        for target in (self._send_loop, self._receive_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def say(self, pcm8k: np.ndarray) -> float:
        """Queue speech (int16 at 8 kHz); returns when it will have been sent (monotonic)."""
        with self._lock:
            self._queue = np.concatenate([self._queue, pcm8k.astype(np.int16)])
            remaining = self._queue.size
        return time.monotonic() + remaining / RATE

    def heard(self) -> np.ndarray:
        """Everything received, in arrival order (FreeSWITCH sends nothing between clips)."""
        return np.concatenate([p.samples for p in self.packets]) if self.packets else np.zeros(0, np.int16)

    def clips(self, gap_s: float = 0.1) -> list[np.ndarray]:
        """What arrived, split where nothing arrived for ``gap_s``: one array per played clip
        (a parked FreeSWITCH channel sends RTP only while it plays something)."""
        groups: list[list[np.ndarray]] = []
        last = -1.0
        for packet in list(self.packets):
            if not groups or packet.arrival - last > gap_s:
                groups.append([])
            groups[-1].append(packet.samples)
            last = packet.arrival
        return [np.concatenate(g) for g in groups]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.sock.close()

    def _send_loop(self) -> None:
        encode = CODECS[self.codec][0]
        seq, timestamp = 0, 0
        started = next_at = time.monotonic()
        while not self._stop.is_set():
            if self.stops_after_s is not None and time.monotonic() - started >= self.stops_after_s:
                self._stop.wait(0.05)  # silent from now on; still receiving
                continue
            with self._lock:
                frame = self._queue[:FRAME]
                self._queue = self._queue[FRAME:]
            if frame.size < FRAME:
                frame = np.concatenate([frame, np.zeros(FRAME - frame.size, np.int16)])
            header = struct.pack("!BBHII", 0x80, PAYLOAD_TYPE[self.codec], seq & 0xFFFF,
                                 timestamp & 0xFFFFFFFF, self._ssrc)
            dropped = self.drop_every and seq % self.drop_every == self.drop_every - 1
            try:
                assert self.remote is not None
                if not dropped:
                    self.sock.sendto(header + encode(frame), self.remote)
                    self.sent += 1
            except OSError:
                return
            seq, timestamp = seq + 1, timestamp + FRAME
            next_at += FRAME / RATE
            late = self.jitter_s if seq % 2 else 0.0
            delay = next_at + late - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            payload_type = data[1] & 0x7F
            if payload_type not in PAYLOAD_TYPE.values():
                continue  # telephone-event, comfort noise: not audio
            codec = "PCMU" if payload_type == 0 else "PCMA"
            seq, timestamp = struct.unpack("!HI", data[2:8])
            csrc = (data[0] & 0x0F) * 4
            self.packets.append(Received(time.monotonic(), seq, timestamp, bool(data[1] & 0x80),
                                         CODECS[codec][1](data[12 + csrc:])))


def frame_levels_dbfs(pcm: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """RMS level of each 20 ms frame, in dBFS."""
    n = pcm.size // frame
    if n == 0:
        return np.zeros(0)
    frames = pcm[: n * frame].astype(np.float64).reshape(n, frame) / 32768.0
    return 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9)


def speech_span_s(pcm: np.ndarray, threshold_dbfs: float = -45.0, rate: int = RATE) -> float:
    """Seconds from the first to the last 20 ms frame above ``threshold_dbfs`` (0 if none)."""
    loud = np.flatnonzero(frame_levels_dbfs(pcm, rate // 50) > threshold_dbfs)
    return 0.0 if loud.size == 0 else (loud[-1] - loud[0] + 1) / 50.0
