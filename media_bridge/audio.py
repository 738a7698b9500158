"""PCM helpers: L16 decode/encode, levels, resampling (soxr) and WAV parsing."""

from __future__ import annotations

import struct

import numpy as np
import soxr

FRAME_MS = 20
SUPPORTED_RATES = (8000, 16000)


def frame_bytes(sample_rate: int, ms: int = FRAME_MS) -> int:
    """Bytes of mono signed 16-bit PCM in ``ms`` milliseconds (640 for 20 ms at 16 kHz)."""
    return sample_rate * 2 * ms // 1000


def decode_l16(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM → int16 array (a copy the caller may keep)."""
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def encode_l16(samples: np.ndarray) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()


def to_float(samples: np.ndarray) -> np.ndarray:
    return (np.asarray(samples, dtype=np.float32) / 32768.0).astype(np.float32)


def to_int16(samples: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 32767.0 / 32768.0)
    return np.round(clipped * 32768.0).astype(np.int16)


def rms_dbfs(samples: np.ndarray) -> float:
    """Level in dB relative to full scale; -120 for digital silence."""
    if samples.size == 0:
        return -120.0
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(x * x)))
    return max(-120.0, 20.0 * np.log10(rms)) if rms > 0 else -120.0


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample int16 or float32 mono audio, keeping its dtype."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    if samples.dtype == np.int16:
        return to_int16(soxr.resample(to_float(samples), from_rate, to_rate, quality="HQ"))
    return soxr.resample(samples.astype(np.float32), from_rate, to_rate, quality="HQ").astype(np.float32)


class WavError(ValueError):
    pass


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM WAV → (int16 samples, rate). Tolerates streamed headers (espeak-ng
    ``--stdout`` writes a placeholder data size), so the data chunk runs to the end of input."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE stream")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt, channels, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if fmt != 1 or bits != 16:
                raise WavError(f"unsupported WAV encoding (format {fmt}, {bits} bits)")
        elif chunk_id == b"data":
            if not rate:
                raise WavError("WAV data before fmt chunk")
            end = min(len(data), body + size)
            end -= (end - body) % (2 * channels)
            samples = np.frombuffer(data[body:end], dtype="<i2").astype(np.int16)
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
            return samples, rate
        pos = body + size + (size & 1)
    raise WavError("WAV has no data chunk")
