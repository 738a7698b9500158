"""Media quality at hangup: RTP timeouts and the leg's MOS, jitter and packet loss.

Defined here, filled by the hangup handling (call quality): see the functions' contracts.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from controller.metrics.registry import REGISTRY, org_label

MOS_BUCKETS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.5)
JITTER_MS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0)
LOSS_RATIO_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0)

RTP_TIMEOUTS = Counter(
    "kallglot_rtp_timeouts", "Call legs FreeSWITCH hung up because RTP stopped arriving (MEDIA_TIMEOUT)",
    ["org"], registry=REGISTRY)
CALL_MOS = Histogram(
    "kallglot_call_mos", "Estimated MOS of a call leg's inbound audio at hangup (rtp_audio_in_mos)",
    ["org"], buckets=MOS_BUCKETS, registry=REGISTRY)
CALL_JITTER = Histogram(
    "kallglot_call_jitter_ms", "Jitter of a call leg's inbound audio at hangup, milliseconds",
    ["org"], buckets=JITTER_MS_BUCKETS, registry=REGISTRY)
CALL_LOSS = Histogram(
    "kallglot_call_packet_loss_ratio", "Share of a call leg's inbound RTP packets lost (0..1) at hangup",
    ["org"], buckets=LOSS_RATIO_BUCKETS, registry=REGISTRY)
CALLS_WITHOUT_MEDIA = Counter(
    "kallglot_call_legs_without_media", "Answered call legs that ended with no inbound RTP at all",
    ["org"], registry=REGISTRY)


def record_rtp_timeout(org_id: str | None) -> None:
    """Call once per leg whose hangup cause is ``MEDIA_TIMEOUT`` (FreeSWITCH's rtp-timeout-sec or
    rtp-hold-timeout-sec fired: the caller's media stopped while the call was up)."""
    RTP_TIMEOUTS.labels(org_label(org_id)).inc()


def observe_call_quality(org_id: str | None, mos: float | None, jitter_ms: float | None,
                         loss_pct: float | None, media_flowed: bool) -> None:
    """Record one answered leg's inbound audio quality, once, at its hangup.

    ``org_id``: the leg's organization (None → "unknown"). ``mos``: FreeSWITCH's estimate
    (``rtp_audio_in_mos``, 1.0–4.5). ``jitter_ms``: jitter in milliseconds. ``loss_pct``:
    packets lost as a percentage of packets expected (0–100), stored as a 0–1 ratio. Any of the
    three may be None when FreeSWITCH did not report it; that one is skipped. ``media_flowed``:
    False when no inbound RTP packet arrived at all — then FreeSWITCH's figures describe nothing
    (it reports a perfect MOS for zero packets), so none is observed and the leg is counted in
    ``kallglot_call_legs_without_media_total`` instead. Never call it for legs that were not
    answered (rejected, 488 at answer): they had no media session.
    """
    org = org_label(org_id)
    if not media_flowed:
        CALLS_WITHOUT_MEDIA.labels(org).inc()
        return
    if mos is not None:
        CALL_MOS.labels(org).observe(mos)
    if jitter_ms is not None:
        CALL_JITTER.labels(org).observe(max(0.0, jitter_ms))
    if loss_pct is not None:
        CALL_LOSS.labels(org).observe(min(1.0, max(0.0, loss_pct / 100.0)))
