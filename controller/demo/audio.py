"""Audio for ``kallglot demo``: speech synthesized with espeak-ng (16 kHz mono L16 WAV, what
the callers say) and WAV files of what each leg heard."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import soxr

from controller.demo.procs import DemoError

SAMPLE_RATE = 16000
VOICES = {"en": "en-us", "es": "es"}


def speak(text: str, language: str, *, rate: int = SAMPLE_RATE) -> bytes:
    """``text`` spoken by espeak-ng in ``language``, as mono 16-bit PCM at ``rate`` Hz."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DemoError("espeak-ng is not installed (apt-get install espeak-ng): "
                        "the demo callers need a voice")
    proc = subprocess.run([exe, "-v", VOICES.get(language, language), "-s", "150", "--stdout", text],
                          capture_output=True, timeout=30, check=False)
    if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
        why = proc.stderr.decode(errors="replace")[:200]
        raise DemoError(f"espeak-ng could not speak {language!r}: {why}")
    with wave.open(io.BytesIO(proc.stdout)) as w:
        src_rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if src_rate != rate:
        pcm = soxr.resample(pcm.astype(np.float32) / 32768.0, src_rate, rate)
        pcm = (np.clip(pcm, -1.0, 1.0) * 32767.0).astype("<i2")
    return pcm.tobytes()


def wav_bytes(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def write_wav(path: Path, pcm: bytes, rate: int = SAMPLE_RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(pcm, rate))
    return path


def concat_at(chunks: list[tuple[bytes, int]], rate: int = SAMPLE_RATE) -> bytes:
    """Several (pcm, sample_rate) chunks as one PCM stream at ``rate`` (resampled where needed)."""
    out: list[bytes] = []
    for pcm, src_rate in chunks:
        if src_rate and src_rate != rate:
            samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            resampled = np.clip(soxr.resample(samples, src_rate, rate), -1.0, 1.0)
            pcm = (resampled * 32767.0).astype("<i2").tobytes()
        out.append(pcm)
    return b"".join(out)


def duration_s(pcm: bytes, rate: int = SAMPLE_RATE) -> float:
    return len(pcm) / 2 / rate
