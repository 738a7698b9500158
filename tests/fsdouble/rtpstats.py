"""The RTP statistics the double reports on CHANNEL_HANGUP_COMPLETE, from what its caller did.

The caller (CallSpec) sends one packet per 20 ms from media start until it hangs up or until
``rtp_stops_after_s``; ``rtp_loss_pct`` of them are lost and ``rtp_jitter_ms`` is the spread of
their arrival. The figures follow switch_rtp.c as measured on the real switch (losses spread
one at a time): flaws = 3 per lost packet (the loss plus do_mos's penalty of 2), R =
100·(received − flaws)/received, MOS = 1 + 0.035·R + 7e-6·R·(R − 60)·(100 − R), the loss rate
as of the last 5-second refresh, variances in ms² (min ≈ (0.6·jitter)², max = jitter²). Not
modelled: bursts of consecutive losses and the jitter buffer counters.
"""

from __future__ import annotations

from tests.fsdouble.callsim import CallSpec

PTIME_S = 0.020
LOSS_REFRESH_S = 5.0  # burstr_calculate runs at the first packet, then every 5 s


def caller_packets(spec: CallSpec, media_s: float) -> int:
    """Packets the caller sent in ``media_s`` seconds of media."""
    if spec.rtp_stops_after_s is not None:
        media_s = min(media_s, spec.rtp_stops_after_s)
    return max(0, int(media_s / PTIME_S))


def rtp_variables(spec: CallSpec, media_s: float, played_s: float, bytes_per_packet: int) -> dict[str, str]:
    """``rtp_audio_*`` values (as FreeSWITCH prints them) for a call with ``media_s`` seconds of
    media from media start to hangup and ``played_s`` seconds played to the caller."""
    sent = caller_packets(spec, media_s)
    lost = round(sent * spec.rtp_loss_pct / 100.0)
    received = sent - lost
    flaws = 3 * lost
    r = max(100.0 * (received - flaws) / received, 0.0) if received > 0 else 100.0
    refreshed = caller_packets(spec, LOSS_REFRESH_S * int(media_s // LOSS_REFRESH_S))
    lost_then = round(refreshed * spec.rtp_loss_pct / 100.0)
    loss_rate = lost_then / (refreshed - lost_then) if refreshed > lost_then else 0.0
    mos = 1 + 0.035 * r + 0.000007 * r * (r - 60) * (100 - r)
    variance = spec.rtp_jitter_ms ** 2
    out = int(played_s / PTIME_S)
    return {
        "rtp_audio_in_raw_bytes": str(received * (bytes_per_packet + 12)),
        "rtp_audio_in_media_bytes": str(received * (bytes_per_packet + 12)),
        "rtp_audio_in_packet_count": str(received),
        "rtp_audio_in_media_packet_count": str(received),
        "rtp_audio_in_jitter_min_variance": f"{variance * 0.36:.2f}" if received else "0.00",
        "rtp_audio_in_jitter_max_variance": f"{variance:.2f}" if received else "0.00",
        "rtp_audio_in_jitter_loss_rate": f"{loss_rate:.2f}",
        "rtp_audio_in_mean_interval": f"{PTIME_S * 1000:.2f}" if received else "0.00",
        "rtp_audio_in_flaw_total": str(flaws),
        "rtp_audio_in_quality_percentage": f"{r:.2f}",
        "rtp_audio_in_mos": f"{mos:.2f}",
        "rtp_audio_out_raw_bytes": str(out * (bytes_per_packet + 12)),
        "rtp_audio_out_media_bytes": str(out * (bytes_per_packet + 12)),
        "rtp_audio_out_packet_count": str(out),
        "rtp_audio_out_media_packet_count": str(out),
    }
