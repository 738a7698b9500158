"""Prometheus metrics of one bridge app (own registry, so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)


@dataclass
class BridgeMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.legs = Gauge("kallglot_bridge_legs", "Connected call-leg websockets", registry=r)
        self.sessions = Gauge("kallglot_bridge_sessions", "Sessions with at least one leg", registry=r)
        self.frames = Counter("kallglot_bridge_frames", "20 ms audio frames received", registry=r)
        self.dropped = Counter(
            "kallglot_bridge_dropped", "Items dropped from a full queue (oldest first)", ["queue"], registry=r
        )
        self.closes = Counter(
            "kallglot_bridge_ws_closes", "Websockets closed by the bridge", ["code"], registry=r
        )
        self.utterances = Counter(
            "kallglot_bridge_utterances", "Utterances by outcome", ["outcome"], registry=r
        )
        self.translations = Counter(
            "kallglot_bridge_translations",
            "Translated utterances by translation path (media_bridge/translation_paths.py) and direction",
            ["path", "source", "target"],
            registry=r,
        )
        self.speculations = Counter(
            "kallglot_bridge_speculations",
            "Engine runs started at a pause (KALLGLOT_VAD_SPECULATE_MS): used at the end of speech,"
            " or dropped because speech resumed",
            ["outcome"],
            registry=r,
        )
        self.barge_ins = Counter("kallglot_bridge_barge_ins", "Barge-in messages sent", registry=r)
        self.audio_out_seconds = Counter(
            "kallglot_bridge_audio_out_seconds", "Seconds of synthesized audio sent", registry=r
        )
        self.transcript_latency = Histogram(
            "kallglot_bridge_transcript_seconds",
            "End of speech to transcript",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.translation_latency = Histogram(
            "kallglot_bridge_translation_seconds",
            "End of speech to translation",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_audio_latency = Histogram(
            "kallglot_bridge_first_audio_seconds",
            "End of speech to the first translated audio byte sent",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
