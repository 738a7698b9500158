"""Small pieces: PCM helpers, WAV parsing, wire messages, bounded leg queues, transcript sequences."""

from __future__ import annotations

import base64
import json
import threading
import time

import numpy as np
import pytest

from controller.store import Store, open_store
from media_bridge.audio import WavError, frame_bytes, parse_wav, resample, rms_dbfs
from media_bridge.engines.offline import split_sentences
from media_bridge.metrics import BridgeMetrics
from media_bridge.records import TurnRecord, insert_turn, load_session, mark_audio
from media_bridge.session import LegStream
from media_bridge.vad import SpeechSegmenter
from media_bridge.wire import MetadataError, parse_metadata, stream_audio_message
from tests.bridge.helpers import make_session


def test_frame_bytes() -> None:
    assert frame_bytes(16000) == 640 and frame_bytes(8000) == 320


def test_resample_keeps_duration_and_tone() -> None:
    t = np.arange(16000) / 16000
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    down = resample(tone, 16000, 8000)
    assert down.dtype == np.int16 and down.size == 8000
    spectrum = np.abs(np.fft.rfft(down.astype(np.float64)))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins over 1 s
    assert -20 < rms_dbfs(down) < -8 and rms_dbfs(np.zeros(10, np.int16)) == -120.0


def test_parse_wav_streamed_header() -> None:
    samples = np.arange(-50, 50, dtype=np.int16)
    header = b"RIFF\xff\xff\xff\x7fWAVEfmt " + (16).to_bytes(4, "little")
    header += (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little")
    header += (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    header += b"data" + (0x7FFFF000).to_bytes(4, "little")  # placeholder size, as espeak-ng writes
    out, rate = parse_wav(header + samples.tobytes())
    assert rate == 22050 and np.array_equal(out, samples)
    with pytest.raises(WavError):
        parse_wav(b"RIFX")


def test_stream_audio_message_shape() -> None:
    message = json.loads(stream_audio_message(np.array([1, -2], dtype=np.int16), 8000))
    assert message["type"] == "streamAudio"
    assert message["data"]["audioDataType"] == "raw" and message["data"]["sampleRate"] == 8000
    assert base64.b64decode(message["data"]["audioData"]) == b"\x01\x00\xfe\xff"


def test_metadata_from_the_real_capture_is_accepted() -> None:
    meta = parse_metadata(
        '{"session_id":"sess_01HFIXTURE0001","role":"customer"}', "sess_01HFIXTURE0001", "leg1"
    )
    assert meta.role == "customer" and meta.sample_rate == 16000
    with pytest.raises(MetadataError, match="leg_id"):
        parse_metadata('{"session_id":"s","role":"agent","leg_id":"other"}', "s", "leg1")


def test_leg_queue_drops_oldest_and_counts() -> None:
    metrics = BridgeMetrics()
    leg = LegStream(
        "leg",
        "customer",
        16000,
        ws=None,
        segmenter=SpeechSegmenter(16000),
        max_frames=10,  # type: ignore[arg-type]
        metrics=metrics,
    )
    for i in range(25):
        leg.enqueue(bytes([i]) * 640, time.time())
    assert len(leg.frames) == 10
    assert leg.frames[0][0][0] == 15  # the newest ten survive
    assert metrics.dropped.labels("leg_frames")._value.get() == 15
    leg.enqueue(b"\0" * 640 * 4, time.time())  # a batched message counts as four frames
    assert metrics.frames._value.get() == 29


def test_split_sentences() -> None:
    assert split_sentences("Hola. ¿Qué tal? Bien!") == ["Hola.", "¿Qué tal?", "Bien!"]


def test_mark_audio_activates_once_and_reports_status(store: Store) -> None:
    session_id = make_session(store, status="created")
    assert mark_audio(store, session_id, first=True, now=100.0) == "active"
    assert mark_audio(store, session_id, first=False, now=105.0) == "active"
    row = store.query_one("SELECT started_at, last_audio_at FROM sessions WHERE id = ?", (session_id,))
    assert row["started_at"] == 100.0 and row["last_audio_at"] == 105.0
    assert mark_audio(store, "sess_gone", first=True) is None
    assert load_session(store, session_id).is_open  # type: ignore[union-attr]


def test_turn_sequences_are_unique_across_connections(tmp_path) -> None:
    path = tmp_path / "k.db"
    first = open_store(path)
    session_id = make_session(first)
    stores = [open_store(path) for _ in range(4)]
    errors: list[BaseException] = []

    def writer(store: Store) -> None:
        try:
            for i in range(10):
                insert_turn(store, TurnRecord(session_id, "customer", "en", f"t{i}", "es", "x", 1.0, 2.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    sequences = [
        r["sequence"]
        for r in first.query("SELECT sequence FROM transcript_turns WHERE session_id = ?", (session_id,))
    ]
    assert sorted(sequences) == list(range(1, 41))
    for s in [first, *stores]:
        s.close()
